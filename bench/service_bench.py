"""Throughput and latency of the attribution service, over HTTP and in process.

    python bench/service_bench.py [--run RUN] [--requests 400] [--clients 1,4,8]

Without ``--run`` it values real held-out digits against the first 1,500 of scikit-learn's
digits (pixels embedder) in a temporary folder. The same image lookups (PNG uploads of held-out
digits) are then timed (a) in process through ``Attributor.attribute_image`` and (b) through
``gmvaluator serve`` on 127.0.0.1, each with one client and with several concurrent clients
(threads, one keep-alive connection each). Prints requests/s and p50/p99 latency, and the BLAS
libraries in use (threadpoolctl).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from PIL import Image


def make_run(root: Path) -> Path:
    from gmvaluator.config import ValueConfig
    from gmvaluator.run.pipeline import run_value

    run = root / "run"
    cfg = ValueConfig(embedder="pixels", k=10)
    run_value("builtin:digits[:1500]", "builtin:digits[1500:1600]", run, cfg, progress=False)
    return run


def payloads() -> list[bytes]:
    from gmvaluator.sources import load_source

    ds = load_source("builtin:digits[1500:1797]")
    out = []
    for a in np.asarray(ds.items.array):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def multipart(data: bytes) -> tuple[bytes, dict[str, str]]:
    b = uuid.uuid4().hex
    body = (
        (
            f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="g.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{b}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={b}"}


def drive(n: int, clients: int, make_worker: Callable[[], Callable[[int], None]]) -> dict:
    """Run ``n`` lookups split over ``clients`` threads; latency of each, and the wall time."""
    lat: list[float] = []
    lock = threading.Lock()
    counter = iter(range(n))

    def loop() -> None:
        work = make_worker()
        mine = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            t0 = time.perf_counter()
            work(i)
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    return {
        "rps": n / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(run: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gmvaluator.cli", "serve", str(run), "--port", str(port),
           "--ledger", "none"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the service did not start within 60 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--clients", default="1,4,8")
    args = ap.parse_args()
    from threadpoolctl import threadpool_info

    from gmvaluator.service.attributor import Attributor

    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or make_run(Path(tmp))
        data = payloads()
        attributor = Attributor.from_run(run, ledger="none")
        clients = [int(c) for c in args.clients.split(",")]
        n = args.requests
        rows = []
        for c in clients:

            def local_worker() -> Callable[[int], None]:
                return lambda i: attributor.attribute_image(data[i % len(data)])

            rows.append(("in-process", c, drive(n, c, local_worker)))
        port = free_port()
        proc = start_server(run, port)
        try:
            for c in clients:

                def http_worker() -> Callable[[int], None]:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

                    def one(i: int) -> None:
                        body, headers = multipart(data[i % len(data)])
                        conn.request("POST", "/attribute/image", body=body, headers=headers)
                        resp = conn.getresponse()
                        payload = resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"HTTP {resp.status}: {payload[:200]!r}")

                    return one

                drive(min(n, 50), c, http_worker)  # warm-up
                rows.append(("http", c, drive(n, c, http_worker)))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    meta = json.loads((Path(run) / "run.json").read_text()) if args.run else None
    print(f"# service benchmark: {n} image lookups per row (k={attributor.valuator.k}, "
          f"{attributor.kind}, {len(attributor.rights.ids)} training items, "
          f"index {attributor.index_version.split()[0]})")  # fmt: skip
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
    )
    blas = sorted({f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
                   for i in threadpool_info()})  # fmt: skip
    print(f"# BLAS: {'; '.join(blas)}")
    if meta:
        print(f"# run {meta.get('run_id')}")
    print(f"{'path':<11} {'clients':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for path, c, r in rows:
        print(f"{path:<11} {c:>7} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")


if __name__ == "__main__":
    main()
