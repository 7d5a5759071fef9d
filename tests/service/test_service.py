"""The attribution service answers real HTTP requests on 127.0.0.1."""

from __future__ import annotations

import http.client
import io
import json
import socket
import time
import uuid

import numpy as np
import pytest
from PIL import Image

from gmvaluator.rights.ledger import open_ledger

MAX_BYTES = 64 * 1024
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(run_dir, serve_app):
    """The service of ``run_dir`` on a free loopback port, in a thread of this process."""
    from gmvaluator.service.http import create_app

    with serve_app(create_app(run_dir, max_bytes=MAX_BYTES, token=TOKEN)) as port:
        yield port


def request(port, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={**AUTH, **(headers or {})})
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


def test_health_and_openapi_schema(server):
    status, body = request(server, "GET", "/health")
    assert status == 200 and body["kind"] == "image" and body["n_train"] == 1500
    status, schema = request(server, "GET", "/openapi.json")
    assert status == 200
    assert {"/attribute/image", "/attribute/text", "/attribute/embedding"} <= set(schema["paths"])


def test_an_uploaded_image_gets_its_contributors_and_credits(server, png_of):
    body, headers = multipart({"file": png_of(42), "quality": "0.5"})
    status, out = request(server, "POST", "/attribute/image", body, headers)
    assert status == 200, out
    assert out["k"] == 5 and out["matches"][0]["train_id"] == "digits/0042"
    assert out["matches"][0]["contributor"] == "c2" and out["matches"][0]["near_copy"]
    assert out["near_copy"] and out["recorded"] == 0
    assert sum(m["credit"] for m in out["matches"]) == pytest.approx(0.5)
    assert sum(c["credit"] for c in out["contributors"]) == pytest.approx(0.5)
    assert out["generated_id"].startswith("sha256:")


def test_the_service_matches_the_batch_valuation(server, run_dir):
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


def test_record_writes_the_ledger_once(server, run_dir, png_of):
    body, headers = multipart({"file": png_of(7), "id": "upload-1",
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


def test_the_http_layer_answers_what_the_attributor_answers(vector_attributor, serve_app):
    """An attributor built in memory, served: the JSON is its in-process answer, and its
    errors become the promised status codes."""
    from gmvaluator.service.http import app_for

    attributor, x = vector_attributor
    sample = {"embedding": x[3].tolist(), "id": "g3", "quality": 0.25}
    want = attributor.attribute_embedding(x[3].tolist(), generated_id="g3", quality=0.25)
    as_json = {"Content-Type": "application/json"}
    with serve_app(app_for(attributor, max_bytes=MAX_BYTES, token=TOKEN)) as port:
        status, out = request(port, "POST", "/attribute/embedding", json.dumps(sample), as_json)
        assert status == 200 and out == json.loads(json.dumps(want))
        assert request(port, "GET", "/health") == (200, {
            "status": "ok", "run_id": "run-v", "kind": "embedding", "embedder": "vectors",
            "n_train": 200, "k": 4, "recording": False, "run_method": "training-free",
        })  # fmt: skip
        status, out = request(port, "POST", "/attribute/embedding",
                              json.dumps({**sample, "record": True}), as_json)  # fmt: skip
        assert status == 400 and "records no credits" in out["detail"]
        status, out = request(port, "POST", "/attribute/text", b'{"text": "a cat"}', as_json)
        assert status == 422 and "values embedding data" in out["detail"]
        status, out = request(port, "POST", "/attribute/embedding",
                              json.dumps({**sample, "quality": -1}), as_json)  # fmt: skip
        assert status == 422 and out["detail"][0]["loc"] == ["body", "quality"]
