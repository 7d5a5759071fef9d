"""Does ``index="auto"`` pick the faster index once it counts the queries?

On a grid of training sizes n and generated-set sizes m, each cell is valued end to end
(``Valuator.fit`` then ``.value``, recall check included) two ways: exact search and IVF-PQ
tuned to recall@10 0.99 (what ``auto`` builds when it picks IVF-PQ), both with the paper credit
rule (``fit``). Each index is built once per n and its fit time added to every m's value time.
``auto`` builds the same index as the branch it picks (same settings, same seed), so its time
is that branch's plus its decision. Vectors are clustered
unit vectors (``scale_bench.clustered``), queries drawn from the same clusters. For each cell
the table gives the three wall times, what ``auto`` chose, the model's predictions
(``search.params.predicted_seconds``) and auto / best.

    OMP_NUM_THREADS=1 .venv/bin/python bench/index_choice.py               # d = 128
    OMP_NUM_THREADS=1 .venv/bin/python bench/index_choice.py --d 512 --ns 10000,100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_bench import clustered

from gmvaluator import Valuator
from gmvaluator.search import params


def fit(x: Any, how: str) -> tuple[Any, float]:
    """The valuator of one way of indexing ``x``, and its fit seconds. The paper credit rule:
    the calibrated rule adds the generated samples' own density (m x m) and a calibration,
    the same work whichever index is built."""
    opts: dict[str, Any] = {"k": 10, "credit": "paper"}
    t0 = time.perf_counter()
    if how == "exact":
        v = Valuator(index="exact", **opts).fit(x)
    else:  # what auto builds when it picks IVF-PQ, forced even below its floor
        floor, params.AUTO_IVFPQ_MIN = params.AUTO_IVFPQ_MIN, 0
        try:
            v = Valuator(**opts).fit(x, n_queries=1, reused=True)
        finally:
            params.AUTO_IVFPQ_MIN = floor
    return v, time.perf_counter() - t0


def value(v: Any, fit_s: float, q: Any) -> dict[str, Any]:
    """End to end (fit + value, recall check included) of one fitted valuator on ``q``."""
    t0 = time.perf_counter()
    result = v.value(q)
    seconds = time.perf_counter() - t0
    return {
        "seconds": round(fit_s + seconds, 3),
        "fit_s": round(fit_s, 3),
        "value_s": round(seconds, 3),
        "kind": v.index_params_.kind,
        "factory": v.index_params_.factory,
        "nprobe": v.index_params_.nprobe,
        "n_candidates": v.index_params_.n_candidates,
        "recall": float(result.recall),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ns", default="10000,100000,400000")
    ap.add_argument("--ms", default="1000,10000,50000")
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--results", default="bench/results/index_choice.json")
    args = ap.parse_args()
    ns = [int(v) for v in args.ns.split(",")]
    ms = [int(v) for v in args.ms.split(",")]
    rows = []
    print(f"d = {args.d}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}", flush=True)
    print("n        m       exact_s  ivfpq_s  auto_s  auto_chose  pred_exact  pred_ivfpq  "
          "auto/best", flush=True)  # fmt: skip
    for n in ns:
        x = clustered(n, args.d, seed=0)
        fitted = {how: fit(x, how) for how in ("exact", "ivfpq")}
        for m in ms:
            q = clustered(m, args.d, seed=1)
            cell: dict[str, Any] = {"n": n, "m": m, "d": args.d}
            for how, (v, fit_s) in fitted.items():
                cell[how] = value(v, fit_s, q)
            t0 = time.perf_counter()
            chose, why = params.auto_kind(n, args.d, m, False)
            decide = time.perf_counter() - t0
            # auto builds the same index as the branch it picks (same settings and seed)
            cell["auto"] = {"kind": chose, "reason": why,
                            "seconds": cell[chose]["seconds"] + decide}  # fmt: skip
            best = min(cell["exact"]["seconds"], cell["ivfpq"]["seconds"])
            cell["auto_over_best"] = round(cell["auto"]["seconds"] / best, 3)
            for kind in ("exact", "ivfpq"):
                cell[f"predicted_{kind}"] = params.predicted_seconds(kind, n, args.d, m)
            rows.append(cell)
            print(
                f"{n:<8} {m:<7} {cell['exact']['seconds']:8.2f} {cell['ivfpq']['seconds']:8.2f} "
                f"{cell['auto']['seconds']:7.2f}  {cell['auto']['kind']:<10}  "
                f"{cell['predicted_exact']:10.2f}  {cell['predicted_ivfpq']:10.2f}  "
                f"{cell['auto_over_best']:9.2f}",
                flush=True,
            )
            save(args.results, rows)  # after every cell: a stopped run keeps what it measured
    print(f"worst auto / best: {save(args.results, rows):.2f} (goal <= 1.20)")


def save(path: str, rows: list[dict[str, Any]]) -> float:
    """Write the cells measured so far, with the machine's state; returns the worst ratio."""
    worst = max(r["auto_over_best"] for r in rows)
    out = {
        "command": "OMP_NUM_THREADS=1 .venv/bin/python " + " ".join(sys.argv),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": os.getloadavg(),
        },
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "cells": rows,
        "worst_auto_over_best": worst,
    }
    Path(path).write_text(json.dumps(out, indent=2) + "\n")
    return worst


if __name__ == "__main__":
    main()
