"""The service as someone else on the network meets it: a real `gmvaluator serve` process,
its token, its limits on what a request may record, and 200 recordings at once."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from gmvaluator.rights.ledger import open_ledger

TOKEN = "a-long-random-token-0123456789"
K = 4


@pytest.fixture(scope="module")
def vector_run(tmp_path_factory, cli):
    """A finished run over 60 seeded 8-d vectors valued against 10 others (k=4)."""
    root = tmp_path_factory.mktemp("secure")
    rng = np.random.default_rng(7)
    np.save(root / "train.npy", rng.standard_normal((60, 8)).astype(np.float32))
    np.save(root / "gen.npy", rng.standard_normal((10, 8)).astype(np.float32))
    res = cli("value", "--train", root / "train.npy", "--generated", root / "gen.npy",
              "--out", root / "run", "--k", K, "--quiet", "--cache", "none")  # fmt: skip
    assert res.exit_code == 0, res.output
    return root / "run"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_args(run, *flags: str) -> list[str]:
    return [sys.executable, "-m", "gmvaluator.cli", "serve", str(run), *flags]


@contextlib.contextmanager
def serving(run, *flags: str, env: dict[str, str] | None = None):
    """`gmvaluator serve RUN FLAGS` in a subprocess on a free loopback port; yields the port."""
    port = free_port()
    cmd = serve_args(run, "--port", str(port), *flags)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})  # fmt: skip
    try:
        deadline = time.time() + 60
        while True:
            try:
                request(port, "GET", "/health")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.time() < deadline, "gmvaluator serve did not start"
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()


def request(port, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else (body if isinstance(body, str) else json.dumps(body))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    ctype = resp.getheader("content-type", "")
    return resp.status, (json.loads(raw) if "json" in ctype else raw.decode())


def sample(i: int, **extra):
    vec = np.random.default_rng(1000 + i).standard_normal(8).round(4).tolist()
    return {"embedding": vec, "id": f"req-{i}", **extra}


def test_serving_beyond_loopback_needs_a_token(vector_run):
    res = subprocess.run(serve_args(vector_run, "--host", "0.0.0.0", "--port", "1"),
                         capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items()
                              if k != "GMVALUATOR_SERVICE_TOKEN"})  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "--host 0.0.0.0 would let other machines reach the service" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_without_the_token_nothing_is_answered_or_recorded(vector_run):
    with serving(vector_run, env={"GMVALUATOR_SERVICE_TOKEN": TOKEN}) as port:
        status, out = request(port, "POST", "/attribute/embedding", sample(0))
        assert status == 401 and "Authorization: Bearer" in out["detail"]
        status, out = request(port, "POST", "/attribute/embedding",
                              sample(0, record=True), token="guess")  # fmt: skip
        assert status == 401 and out["detail"] == "the token is wrong."
        status, out = request(port, "POST", "/attribute/embedding", sample(0), token=TOKEN)
        assert status == 200 and out["k"] == K and out["recorded"] == 0
    with open_ledger(vector_run) as led:
        assert led.explain("req-0").empty


def test_a_service_without_a_token_refuses_to_record(vector_run):
    with serving(vector_run) as port:
        status, out = request(port, "POST", "/attribute/embedding", sample(1))
        assert status == 200 and out["recorded"] == 0  # a lookup on loopback stays open
        status, out = request(port, "POST", "/attribute/embedding", sample(1, record=True))
        assert status == 401 and "record=true needs the service token" in out["detail"]
    with open_ledger(vector_run) as led:
        assert led.explain("req-1").empty


def test_quality_must_be_finite_and_in_range_and_ids_keep_their_content(vector_run, cli):
    with serving(vector_run, "--token", TOKEN) as port:
        for q in (1.7e308, 1.5):
            status, out = request(port, "POST", "/attribute/embedding",
                                  sample(2, quality=q, record=True), token=TOKEN)  # fmt: skip
            assert status == 422, out
            assert f"quality is {q}; it must be a finite number from 0 to 1" in out["detail"]
        body = json.dumps(sample(2, record=True)).replace('"id"', '"quality": Infinity, "id"')
        status, out = request(port, "POST", "/attribute/embedding", body, token=TOKEN)
        assert status == 422 and out["detail"][0]["loc"] == ["body", "quality"]
        status, out = request(port, "POST", "/attribute/embedding",
                              sample(2, quality=0.5, record=True), token=TOKEN)  # fmt: skip
        assert status == 200 and out["recorded"] == K
        other = {**sample(3, record=True), "id": "req-2"}  # the same id, other content
        status, out = request(port, "POST", "/attribute/embedding", other, token=TOKEN)
        assert status == 409
        assert "generated id 'req-2' is recorded already for other content" in out["detail"]
    res = cli("ledger", "totals", vector_run)
    assert res.exit_code == 0 and "inf" not in res.stdout
    with open_ledger(vector_run) as led:
        assert led.explain("req-2")["credit"].sum() == pytest.approx(0.5)


def test_the_api_page_loads_nothing_from_the_network_and_lists_the_errors(vector_run):
    with serving(vector_run) as port:
        status, page = request(port, "GET", "/docs")
        _, schema = request(port, "GET", "/openapi.json")
    assert status == 200 and "/attribute/embedding" in page and "<script" not in page
    assert "http://" not in page and "https://" not in page and "401" in page
    answers = schema["paths"]["/attribute/embedding"]["post"]["responses"]
    assert {"200", "400", "401", "409", "413", "415", "422"} <= set(answers)


def test_200_recordings_8_at_a_time_then_a_rewritten_row_is_named(vector_run, cli):
    """150 new ids, 25 sent twice alike (recorded once) and 25 sent again with other
    content (409): every answer as expected, the ledger exactly what was recorded."""
    jobs = [sample(i, record=True) for i in range(100, 250)]
    jobs += [sample(i, record=True) for i in range(100, 125)]
    jobs += [{**sample(i + 1000, record=True), "id": f"req-{i}"} for i in range(125, 150)]
    rng = np.random.default_rng(0)
    jobs = [jobs[i] for i in rng.permutation(len(jobs))]
    with open_ledger(vector_run) as led:
        before = led.count()
    with serving(vector_run, "--token", TOKEN) as port, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda j: request(port, "POST", "/attribute/embedding", j, token=TOKEN), jobs
        ))  # fmt: skip
    recorded: dict[str, int] = {}
    conflicts = 0
    for job, (status, out) in zip(jobs, answers, strict=True):
        if status == 409:
            conflicts += 1
            continue
        assert status == 200, out
        assert out["generated_id"] == job["id"] and out["k"] == K
        recorded[job["id"]] = recorded.get(job["id"], 0) + out["recorded"]
    assert conflicts == 25 and len(recorded) == 150 and set(recorded.values()) == {K}
    with open_ledger(vector_run) as led:
        assert led.count() == before + 150 * K
        assert set(led.export()["generated_id"]) >= {f"req-{i}" for i in range(100, 250)}
    res = cli("ledger", "verify", vector_run)
    assert res.exit_code == 0 and "hash chain and triggers intact" in res.stdout
    with sqlite3.connect(vector_run / "ledger.sqlite") as conn:
        seq = conn.execute(
            "SELECT seq FROM credits WHERE generated_id = 'req-140' AND rank = 2"
        ).fetchone()[0]
        conn.execute("DROP TRIGGER credits_no_update")
        conn.execute("UPDATE credits SET credit = 999 WHERE seq = ?", [seq])
    res = cli("ledger", "verify", vector_run)
    assert res.exit_code == 1
    assert f"row {seq} (run " in res.stdout and "generated 'req-140', rank 2)" in res.stdout
    assert "the row was rewritten" in res.stdout and "credits_no_update are gone" in res.stdout
    assert "failed verification: 2 problem(s)" in res.stderr
