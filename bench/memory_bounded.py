"""Peak memory of `gmvaluator value` on a Parquet source as it grows: bounded, not linear.

Writes Parquet files of N and 4N noisy 256x256 RGB PNGs (about 190 KB each), values each in a
fresh process with the pixels embedder, and prints the peak resident memory (ru_maxrss of the
child) next to the source size. With streamed row groups and memory-mapped embeddings the peak
should grow far less than the 4x growth of the source.

    OMP_NUM_THREADS=1 .venv/bin/python bench/memory_bounded.py --n 1000
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def write_source(path: Path, n: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, n, 256):
        blobs = []
        for _ in range(min(256, n - start)):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(buf, "PNG")
            blobs.append(buf.getvalue())
        table = pa.table({"image": blobs})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=128)
    assert writer is not None
    writer.close()
    return path.stat().st_size


def peak_rss_of_run(source: Path, out: Path) -> tuple[float, float]:
    code = (
        "import resource, sys; from gmvaluator.cli import run; sys.argv = ['gmvaluator', "
        f"'value', '--train', '{source}', '--generated', 'builtin:digits[:50]', '--out', '{out}', "
        "'--embedder', 'pixels', '--index', 'ivfpq', '--quiet'];\n"
        "try:\n    run()\nexcept SystemExit:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(res.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for n in (args.n, 4 * args.n):
            src = Path(tmp) / f"src{n}.parquet"
            size = write_source(src, n)
            peak, secs = peak_rss_of_run(src, Path(tmp) / f"run{n}")
            rows.append((n, size / 2**20, peak, secs))
            print(
                f"n={n:>6}  source {size / 2**20:8.1f} MiB  peak RSS {peak:7.1f} MiB  {secs:.1f} s"
            )
        (_, s0, p0, _), (_, s1, p1, _) = rows
        print(f"source grew {s1 / s0:.2f}x, peak memory grew {p1 / p0:.2f}x")


if __name__ == "__main__":
    main()
