"""The attribution service answers real HTTP requests on 127.0.0.1."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
import uuid

import numpy as np
import pytest
from PIL import Image

from gmvaluator.errors import InputError
from gmvaluator.rights.ledger import open_ledger

MAX_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, owned_digits, value_run):
    out = tmp_path_factory.mktemp("service") / "run"
    value_run(out, owned_digits, "builtin:digits[1500:1520]", "--ledger", "none")
    return out


@pytest.fixture(scope="module")
def server(run_dir):
    """The service on a free loopback port, in a thread of this process."""
    pytest.importorskip("fastapi")
    import uvicorn

    from gmvaluator.service.attributor import create_app

    app = create_app(run_dir, max_bytes=MAX_BYTES)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        assert time.time() < deadline and thread.is_alive(), "the service did not start"
        time.sleep(0.05)
    yield port
    srv.should_exit = True
    thread.join(timeout=10)


def request(port, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return resp.status, (json.loads(data) if data else None)


def multipart(fields: dict[str, str | bytes]) -> tuple[bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f"--{boundary}\r\n".encode())
        if isinstance(value, bytes):
            out.write(
                f'Content-Disposition: form-data; name="{name}"; filename="g.png"\r\n'.encode()
            )
            out.write(b"Content-Type: image/png\r\n\r\n" + value + b"\r\n")
        else:
            out.write(f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def png_of_training_digit(owned_digits, row: int) -> bytes:
    image = Image.fromarray(np.load(owned_digits)["images"][row])
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_health_and_openapi_schema(server):
    status, body = request(server, "GET", "/health")
    assert status == 200 and body["kind"] == "image" and body["n_train"] == 1500
    status, schema = request(server, "GET", "/openapi.json")
    assert status == 200
    assert {"/attribute/image", "/attribute/text", "/attribute/embedding"} <= set(schema["paths"])


def test_an_uploaded_image_gets_its_contributors_and_credits(server, owned_digits):
    body, headers = multipart({"file": png_of_training_digit(owned_digits, 42), "quality": "0.5"})
    status, out = request(server, "POST", "/attribute/image", body, headers)
    assert status == 200, out
    assert out["k"] == 5 and out["matches"][0]["train_id"] == "digits/0042"
    assert out["matches"][0]["contributor"] == "c2" and out["matches"][0]["near_copy"]
    assert out["near_copy"] and out["recorded"] == 0
    assert sum(m["credit"] for m in out["matches"]) == pytest.approx(0.5)
    assert sum(c["credit"] for c in out["contributors"]) == pytest.approx(0.5)
    assert out["generated_id"].startswith("sha256:")


def test_the_service_matches_the_batch_valuation(server, run_dir, owned_digits):
    """The same digit valued by the service and by `gmvaluator value` gets the same credits."""
    import pandas as pd

    from gmvaluator.sources import load_source

    ds = load_source("builtin:digits[1500:1501]")
    buf = io.BytesIO()
    Image.fromarray(np.asarray(ds.items.array)[0]).save(buf, format="PNG")
    body, headers = multipart({"file": buf.getvalue(), "id": "digits/1500"})
    status, out = request(server, "POST", "/attribute/image", body, headers)
    att = pd.read_parquet(run_dir / "attributions.parquet")
    want = att[att["generated_id"] == "digits/1500"]
    assert status == 200 and [m["train_id"] for m in out["matches"]] == want["train_id"].tolist()
    np.testing.assert_allclose([m["credit"] for m in out["matches"]], want["credit"], atol=1e-6)


def test_record_writes_the_ledger_once(server, run_dir, owned_digits):
    body, headers = multipart({"file": png_of_training_digit(owned_digits, 7), "id": "upload-1",
                               "record": "true"})  # fmt: skip
    assert request(server, "POST", "/attribute/image", body, headers)[1]["recorded"] == 5
    assert request(server, "POST", "/attribute/image", body, headers)[1]["recorded"] == 0
    with open_ledger(run_dir) as led:
        ex = led.explain("upload-1")
    assert len(ex) == 5 and ex["train_id"].iloc[0] == "digits/0007"


@pytest.mark.parametrize(
    ("path", "body", "ctype", "code", "says"),
    [
        ("/attribute/image", b"not an image", "multipart", 400, "cannot read image"),
        ("/attribute/image", b"", "multipart-nofile", 422, "file"),
        ("/attribute/image", b"hello", "text/plain", 415, "multipart/form-data"),
        ("/attribute/text", b'{"text": "a cat"', "application/json", 400, "not valid JSON"),
        ("/attribute/text", b'{"text": "a cat"}', "application/json", 422, "values image data"),
        ("/attribute/text", b'{"txt": "a cat"}', "application/json", 422, "text"),
        ("/attribute/text", b'{"text": "a cat"}', "text/plain", 415, "application/json"),
        ("/attribute/embedding", b'{"embedding": [1, 2]}', "application/json", 422, "image"),
    ],
)
def test_bad_requests_get_clear_4xx(server, path, body, ctype, code, says):
    if ctype == "multipart":
        data, headers = multipart({"file": body})
    elif ctype == "multipart-nofile":
        data, headers = multipart({"id": "x"})
    else:
        data, headers = body, {"Content-Type": ctype}
    status, out = request(server, "POST", path, data, headers)
    assert status == code, out
    assert says in json.dumps(out["detail"])


def test_oversized_requests_get_413(server):
    big = b"\0" * (MAX_BYTES + 1)
    data, headers = multipart({"file": big})
    status, out = request(server, "POST", "/attribute/image", data, headers)
    assert status == 413 and "larger than the limit" in out["detail"]
    # a chunked body declares no length: the limit is enforced while it streams in
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    chunks = iter([data[i : i + 8192] for i in range(0, len(data), 8192)])
    headers = {**headers, "Transfer-Encoding": "chunked"}
    conn.request("POST", "/attribute/image", body=chunks, headers=headers, encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 413
    conn.close()


def test_serve_command_answers_on_loopback(run_dir):
    """`gmvaluator serve` itself, as a user starts it, in a subprocess."""
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "gmvaluator.cli", "serve", str(run_dir), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while True:
            try:
                status, body = request(port, "GET", "/health")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.time() < deadline, "gmvaluator serve did not start"
                time.sleep(0.2)
        assert status == 200 and body["recording"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()


def test_the_service_never_returns_excluded_items(tmp_path, owned_digits, value_run):
    """Under --opt-out exclude an opted-out training image, uploaded as it is, is not matched."""
    from gmvaluator.service.attributor import Attributor

    value_run(tmp_path / "r", owned_digits, "builtin:digits[1500:1502]", "--opt-out", "exclude")
    attributor = Attributor.from_run(tmp_path / "r", ledger="none")
    opted_out = np.flatnonzero(np.load(owned_digits)["opt_out"])
    for row in opted_out[:20]:
        out = attributor.attribute_image(png_of_training_digit(owned_digits, int(row)))
        ids = [m["train_id"] for m in out["matches"]]
        assert f"digits/{row:04d}" not in ids
        assert all(int(i.split("/")[1]) % 7 != 3 for i in ids)
    kept = attributor.attribute_image(png_of_training_digit(owned_digits, 4))
    assert kept["matches"][0]["train_id"] == "digits/0004"


class _TextEmbedder:
    """Bag-of-words counts over a fixed vocabulary: a small, deterministic text embedder."""

    name, version, kind = "bow", "1", "text"

    def __init__(self, vocab: list[str]) -> None:
        self.vocab = {w: i for i, w in enumerate(vocab)}

    def embed_batch(self, texts):
        out = np.zeros((len(texts), len(self.vocab)), dtype=np.float32)
        for r, t in enumerate(texts):
            for w in t.lower().split():
                if w in self.vocab:
                    out[r, self.vocab[w]] += 1
        return out + 1e-3  # never the zero vector


def test_text_samples_are_attributed_to_their_authors(tmp_path):
    """Real text (Debian fortunes): quoting a training text credits its author first; the
    text endpoint refuses images and the image endpoint refuses text with clear errors."""
    from pathlib import Path

    from gmvaluator.core.valuator import Valuator
    from gmvaluator.rights.contributors import TrainingRights
    from gmvaluator.service.attributor import Attributor, KindError

    fortunes = Path("/usr/share/games/fortunes/fortunes")
    if not fortunes.is_file():
        pytest.skip("Debian fortunes are not installed (apt-get install fortunes)")
    quotes = [q.strip() for q in fortunes.read_text(errors="replace").split("\n%\n") if q.strip()]
    quotes = quotes[:120]
    vocab = sorted({w for q in quotes for w in q.lower().split()})
    embedder = _TextEmbedder(vocab)
    x = embedder.embed_batch(quotes)
    ids = [f"q{i}" for i in range(len(quotes))]
    rights = TrainingRights(
        ids=np.array(ids), contributors=np.array([f"author{i % 4}" for i in range(len(ids))]),
        licence=None, opt_out=None,
    )  # fmt: skip
    valuator = Valuator(k=3, index="exact").fit(x, ids=ids)
    attributor = Attributor(valuator, rights, embedder, threshold=1e-6)
    out = attributor.attribute_text(quotes[5], generated_id="same")
    assert out["matches"][0]["train_id"] == "q5" and out["matches"][0]["contributor"] == "author1"
    assert out["near_copy"] and out["matches"][0]["near_copy"]
    # per-contributor credit is the sum over that contributor's matches
    want: dict[str, float] = {}
    for m in out["matches"]:
        want[m["contributor"]] = want.get(m["contributor"], 0.0) + m["credit"]
    got = {c["contributor"]: c["credit"] for c in out["contributors"]}
    assert got == pytest.approx(want) and sum(got.values()) == pytest.approx(1.0)
    with pytest.raises(KindError, match="values text data"):
        attributor.attribute_image(b"\x89PNG")
    with pytest.raises(InputError, match="text is empty"):
        attributor.attribute_text("   ")
