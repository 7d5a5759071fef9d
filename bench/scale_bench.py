"""Matching at scale: exact and approximate search, build + search totals, peak memory, Ray.

Everything is measured in one run on the same machine, so the ratios compare like with like;
the BLAS kernel each library runs (threadpoolctl) is printed and saved with the figures.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scale_bench.py --n 100000 --m 2000
    OMP_NUM_THREADS=1 .venv/bin/python bench/scale_bench.py --goal   # 1M x 100k, out of core
    .venv/bin/python bench/scale_bench.py --plot   # docs/images/scaling.png from the JSON

Data: clustered unit vectors (d = 512, 1,000 Gaussian clusters), queries drawn like the
training items (held out), cosine distance, k = 10. Writes bench/results/scale.json (``--goal``:
scale_goal.json; its data files are written to ``--data-dir`` and deleted afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "scale.json"
GOAL_RESULTS = RESULTS.with_name("scale_goal.json")
PLOT = Path(__file__).parents[1] / "docs" / "images" / "scaling.png"
K = 10


def clustered(n: int, d: int = 512, seed: int = 0, centers: int = 1000) -> np.ndarray:
    """n unit vectors around the same fixed centres; ``seed`` only changes which points."""
    c = np.random.default_rng(12345).normal(size=(centers, d)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 50_000):
        b = min(50_000, n - s)
        out[s : s + b] = c[rng.integers(0, centers, b)] + 0.7 * rng.normal(size=(b, d))
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def machine() -> dict[str, Any]:
    import faiss  # noqa: F401  (its bundled OpenBLAS shows up only once loaded)
    import sklearn.neighbors  # noqa: F401
    from threadpoolctl import threadpool_info

    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if "model name" in ln), "?")
    libs = [
        {k: i.get(k) for k in ("internal_api", "architecture", "num_threads", "filepath")}
        for i in threadpool_info()
    ]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "blas": libs,
    }


def timed(fn: Any, repeat: int = 1) -> tuple[Any, float]:
    """fn's result and its best wall time over ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def numpy_exact(x: np.ndarray, q: np.ndarray, k: int, block: int = 256) -> np.ndarray:
    out = []
    for s in range(0, len(q), block):
        score = q[s : s + block] @ x.T
        part = np.argpartition(-score, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(score, part, axis=1), axis=1)
        out.append(np.take_along_axis(part, order, axis=1))
    return np.concatenate(out)


def peak_flops(n: int = 2048, reps: int = 5) -> float:
    """The machine's float32 matrix-multiply rate (numpy BLAS, best of ``reps``)."""
    a = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
    best = min(timed(lambda: a @ a)[1] for _ in range(reps))
    return 2 * n**3 / best


def search_table(x: np.ndarray, q: np.ndarray) -> dict[str, Any]:
    """Queries/s and recall@10 of each way to match, on the same data and queries."""
    import faiss
    from sklearn.neighbors import NearestNeighbors

    from gmvaluator import Valuator
    from gmvaluator import search as ix
    from gmvaluator.search import params as ix_params

    n, d = x.shape
    truth, t_np = timed(lambda: numpy_exact(x, q, K))
    flat = faiss.IndexFlatIP(d)
    flat.add(x)
    (_, i_faiss), t_faiss = timed(lambda: flat.search(q, K))
    nn = NearestNeighbors(n_neighbors=K, algorithm="brute", metric="cosine").fit(x)
    sk_q = q[: min(len(q), 1000)]
    (_, i_sk), t_sk = timed(lambda: nn.kneighbors(sk_q))
    old = ix_params.AUTO_EXACT_MAX
    ix_params.AUTO_EXACT_MAX = 0  # force the approximate branch of auto at this n
    v, t_build = timed(lambda: Valuator(k=K, index="auto").fit(x))
    ix_params.AUTO_EXACT_MAX = old
    index, p = v.faiss_index_, v.index_params_
    (_, i_ivf), t_ivf = timed(lambda: ix.search(index, v.embeddings_, q, K, p), 3)
    (_, i_raw), t_raw = timed(lambda: index.search(q, p.n_candidates or K), 3)
    calls = []
    for _ in range(2):  # value() also measures recall: leave that out, within the same call
        r, t_value = timed(lambda: v.value(q))
        calls.append((t_value - r.timings["recall_s"], r.timings["search_s"], r))
    t_pipeline, t_inner, r = min(calls, key=lambda c: c[0])
    rate = {
        "exact_numpy": len(q) / t_np,
        "exact_faiss": len(q) / t_faiss,
        "sklearn_brute": len(sk_q) / t_sk,
        "ivfpq_rerank": len(q) / t_ivf,
        "pipeline_value": len(q) / t_pipeline,
    }
    recall = {
        "exact_numpy": 1.0,
        "exact_faiss": ix.recall_at_k(i_faiss, truth),
        "sklearn_brute": ix.recall_at_k(i_sk, truth[: len(sk_q)]),
        "ivfpq_rerank": ix.recall_at_k(i_ivf, truth),
        "pipeline_value": ix.recall_at_k(r.indices, truth),
    }
    flops = 2.0 * n * d * len(q) / t_faiss
    return {
        "n": n,
        "d": d,
        "m": len(q),
        "queries_per_s": rate,
        "recall_at_10": recall,
        "ivfpq_build_s": t_build,
        "ivfpq_params": p.to_dict(),
        "exact_faiss_gflops": flops / 1e9,
        "pipeline_overhead_vs_search_with_rerank": t_pipeline / t_ivf,
        # the same call's own search time: free of the load changing between two calls
        "pipeline_overhead_same_call": t_pipeline / t_inner,
        "pipeline_overhead_vs_bare_faiss_candidates": t_pipeline / t_raw,
        "ivfpq_without_rerank_recall_at_10": ix.recall_at_k(i_raw[:, :K], truth),
    }


def totals(table: dict[str, Any], ms: list[int]) -> list[dict[str, Any]]:
    """Build + search seconds for m generated samples, from the rates measured above."""
    rate = table["queries_per_s"]
    return [
        {
            "m": m,
            "sklearn_s": m / rate["sklearn_brute"],
            "exact_faiss_s": m / rate["exact_faiss"],
            "ivfpq_s": table["ivfpq_build_s"] + m / rate["ivfpq_rerank"],
            "ivfpq_vs_sklearn": (m / rate["sklearn_brute"])
            / (table["ivfpq_build_s"] + m / rate["ivfpq_rerank"]),
        }
        for m in ms
    ]


def measured_totals(x: np.ndarray, ms: list[int], subset: int = 2000) -> list[dict[str, Any]]:
    """Build + search, timed end to end for each m: a fresh auto IVF-PQ ``fit`` and ``value``.

    scikit-learn brute and exact faiss cost the same per query, so they are timed on the first
    ``subset`` queries and scaled linearly to m (their fit is timed whole); recall@10 of every
    method is measured on that subset against exact numpy search.
    """
    rows = []
    for m in ms:
        rows.append(_measured_total(x, m, subset))
        print(json.dumps(rows[-1], indent=1), flush=True)
    return rows


def _measured_total(x: np.ndarray, m: int, subset: int) -> dict[str, Any]:
    """One row of ``measured_totals``."""
    import faiss
    from sklearn.neighbors import NearestNeighbors

    from gmvaluator import Valuator
    from gmvaluator import search as ix
    from gmvaluator.search import params as ix_params

    q = clustered(m, seed=99)
    sub = q[:subset]
    truth = numpy_exact(x, sub, K)
    nn, t_sk_fit = timed(lambda: NearestNeighbors(n_neighbors=K, algorithm="brute",
                                                  metric="cosine").fit(x))  # fmt: skip
    (_, i_sk), t_sk = timed(lambda: nn.kneighbors(sub))
    flat = faiss.IndexFlatIP(x.shape[1])
    _, t_flat_add = timed(lambda: flat.add(x))
    (_, i_flat), t_flat = timed(lambda: flat.search(sub, K))
    old = ix_params.AUTO_EXACT_MAX
    ix_params.AUTO_EXACT_MAX = 0  # the approximate branch of auto at this n
    v, t_fit = timed(lambda: Valuator(k=K, index="auto").fit(x))
    ix_params.AUTO_EXACT_MAX = old
    r, t_value = timed(lambda: v.value(q))
    t_ours = t_fit + t_value - r.timings["recall_s"]
    sk_total = t_sk_fit + t_sk * m / len(sub)
    row = {
        "m": m,
        "sklearn_s": sk_total,
        "sklearn_timed_queries": len(sub),
        "exact_faiss_s": t_flat_add + t_flat * m / len(sub),
        "ivfpq_fit_s": t_fit,
        "ivfpq_search_s": r.timings["search_s"],
        "ivfpq_value_s": t_value - r.timings["recall_s"],
        "ivfpq_recall_check_s": r.timings["recall_s"],
        "ivfpq_s": t_ours,
        "ivfpq_vs_sklearn": sk_total / t_ours,
        "ivfpq_with_recall_check_vs_sklearn": sk_total / (t_fit + t_value),
        "ivfpq_params": v.index_params_.to_dict(),
        "recall_at_10": {
            "sklearn_brute": ix.recall_at_k(i_sk, truth),
            "exact_faiss": ix.recall_at_k(i_flat, truth),
            "ivfpq_rerank": ix.recall_at_k(r.indices[:subset], truth),
            "value_recall_check": r.recall,
        },
    }
    return row


_CHILD = """
import json, sys, threading, time
import numpy as np
from gmvaluator import Valuator
from gmvaluator.search import params as ix_params
ix_params.AUTO_EXACT_MAX = 0  # the approximate branch of auto at every n
peak = [0]
def watch():
    while True:
        for line in open('/proc/self/status'):
            if line.startswith('RssAnon:'):
                peak[0] = max(peak[0], int(line.split()[1]) * 1024)
        time.sleep(0.02)
threading.Thread(target=watch, daemon=True).start()
x = np.load(sys.argv[1], mmap_mode='r')
q = np.load(sys.argv[2], mmap_mode='r')
t0 = time.perf_counter()
v = Valuator(k=10, index=sys.argv[4]).fit(x, store=sys.argv[3])
t_fit = time.perf_counter() - t0
r = v.value(q)
seconds = time.perf_counter() - t0
time.sleep(0.1)
print(json.dumps({'peak_anon_bytes': peak[0], 'seconds': seconds, 'fit_s': t_fit,
                  'value_s': seconds - t_fit, 'timings': r.timings, 'recall': r.recall,
                  'recall_queries': r.recall_queries, 'matched': int((r.n_matches > 0).sum()),
                  'factory': v.index_params_.factory, 'params': v.index_params_.to_dict()}))
"""


def write_clustered(path: Path, n: int, seed: int, block: int = 100_000) -> None:
    """``n`` clustered vectors written to a ``.npy`` file block by block, never whole."""
    mm = np.lib.format.open_memmap(path, "w+", np.float32, (n, 512))
    for s in range(0, n, block):
        mm[s : s + block] = clustered(min(block, n - s), seed=seed + s)
    mm.flush()
    del mm


def run_child(x: Path, q: Path, store: Path, kind: str) -> dict[str, Any]:
    """Fit + value in a fresh process; its peak RssAnon excludes the memory-mapped files."""
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, str(x), str(q), str(store), kind],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def memory_table(ns: list[int], m: int, kind: str) -> list[dict[str, Any]]:
    """Peak anonymous memory (beyond the memory-mapped embeddings) of fit + value against n."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "q.npy", clustered(m, seed=7))
        for n in ns:
            path = Path(tmp) / f"x{n}.npy"
            write_clustered(path, n, seed=1)
            out = run_child(path, Path(tmp) / "q.npy", Path(tmp) / f"ix{n}", kind)
            out.update(n=n, embeddings_bytes=n * 512 * 4, kind=kind)
            rows.append(out)
            print(
                f"  n={n:>8}  embeddings {n * 2048 / 2**20:7.0f} MiB  peak anon "
                f"{out['peak_anon_bytes'] / 2**20:7.0f} MiB  {out['seconds']:.1f} s  "
                f"{out['factory']}  recall {out['recall']:.3f}",
                flush=True,
            )
            path.unlink()
    return rows


def goal_run(n: int, m: int, folder: Path) -> dict[str, Any]:
    """The goal: n training x m generated precomputed embeddings written to disk, then valued
    (auto index, fit + value) in a fresh process; reports peak RssAnon, wall time, recall@10."""
    folder.mkdir(parents=True, exist_ok=True)
    x, q, store = folder / "train.npy", folder / "generated.npy", folder / "index"
    try:
        t0 = time.perf_counter()
        write_clustered(x, n, seed=1)
        write_clustered(q, m, seed=10_000_000)
        t_write = time.perf_counter() - t0
        print(f"  wrote {n:,} + {m:,} vectors in {t_write:.0f} s", flush=True)
        t0 = time.perf_counter()
        out = run_child(x, q, store, "auto")
        out["wall_s"] = time.perf_counter() - t0
        out.update(n=n, m=m, write_s=t_write)
        out["embeddings_bytes"] = x.stat().st_size + q.stat().st_size
    finally:
        for p in (x, q):
            p.unlink(missing_ok=True)
        if store.exists():
            shutil.rmtree(store)
    return out


def ray_table(x: np.ndarray, q: np.ndarray) -> dict[str, Any]:
    """The Ray engine on this machine (local cluster, 2 shards) against the local engine."""
    import ray

    from gmvaluator import Valuator
    from gmvaluator.engines.ray import RayEngine

    with tempfile.TemporaryDirectory() as tmp:
        v = Valuator(k=K, index="exact").fit(x, store=tmp)
        local, t_local = timed(lambda: v.value(q))
        (_, t_init) = timed(lambda: ray.init(num_cpus=2, include_dashboard=False))
        remote, t_ray = timed(lambda: v.value(q, search=RayEngine(ray, 2).search))
        ray.shutdown()
    same = float(np.abs(remote.values - local.values).max())
    return {
        "n": len(x),
        "m": len(q),
        "local_s": t_local,
        "ray_s": t_ray,
        "ray_init_s": t_init,
        "overhead": t_ray / t_local,
        "max_value_difference": same,
    }


def plot(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    tot = results["totals"]
    ms = [t["m"] for t in tot]
    for key, label in (("sklearn_s", "sklearn brute"), ("exact_faiss_s", "exact faiss"),
                       ("ivfpq_s", "IVF-PQ + re-rank (incl. build)")):  # fmt: skip
        a.plot(ms, [t[key] for t in tot], "o-", label=f"{label} (from rates)")
    timed_rows = results.get("measured_totals") or []
    for key, label, color in (("sklearn_s", "sklearn brute", "C0"),
                              ("ivfpq_s", "IVF-PQ build + search", "C2")):  # fmt: skip
        a.plot([t["m"] for t in timed_rows], [t[key] for t in timed_rows], "*", ms=13,
               color=color, markeredgecolor="k", label=f"{label}, timed")  # fmt: skip
    n = results["search"]["n"]
    a.set(xscale="log", yscale="log", xlabel="generated samples m", ylabel="seconds",
          title=f"build + search, n = {n:,}, d = 512")  # fmt: skip
    a.legend()
    mem = list(results["memory"])
    if GOAL_RESULTS.is_file():  # the 1M x 100k goal run, from its own JSON
        mem.append(json.loads(GOAL_RESULTS.read_text())["goal"])
    b.plot([r["n"] for r in mem], [r["peak_anon_bytes"] / 2**20 for r in mem], "o-",
           label="peak anonymous memory (RssAnon)")  # fmt: skip
    b.plot([r["n"] for r in mem], [r["n"] * 512 * 4 / 2**20 for r in mem], "s--",
           label="embeddings file (n x d float32)")  # fmt: skip
    b.set(xscale="log", yscale="log", xlabel="training items n", ylabel="MiB",
          title="fit + value, auto IVF-PQ, memory-mapped (1M: m = 100k)")  # fmt: skip
    b.legend()
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)
    print(f"wrote {PLOT}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--m", type=int, default=2000)
    ap.add_argument("--memory-ns", default="50000,100000,200000,400000")
    ap.add_argument("--totals-ms", default="10000,50000", help="m timed end to end")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--plot", action="store_true", help="only redraw the plot from the JSON")
    ap.add_argument("--goal", action="store_true", help="only the 1M x 100k out-of-core run")
    ap.add_argument("--goal-n", type=int, default=1_000_000)
    ap.add_argument("--goal-m", type=int, default=100_000)
    ap.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "gmv-goal")
    args = ap.parse_args()
    if args.goal:
        out = {"machine": machine(), "command": " ".join(sys.argv)}
        out["goal"] = goal_run(args.goal_n, args.goal_m, args.data_dir)
        print(json.dumps(out["goal"], indent=1), flush=True)
        GOAL_RESULTS.write_text(json.dumps(out, indent=1))
        print(f"wrote {GOAL_RESULTS}")
        return
    if args.plot:
        plot(json.loads(RESULTS.read_text()))
        return
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv)}
    print(json.dumps(results["machine"], indent=1), flush=True)
    results["peak_gflops"] = peak_flops() / 1e9
    x, q = clustered(args.n), clustered(args.m, seed=99)
    t = search_table(x, q)
    t["exact_faiss_share_of_peak"] = t["exact_faiss_gflops"] / results["peak_gflops"]
    results["search"] = t
    print(json.dumps(t, indent=1), flush=True)
    results["totals"] = totals(t, [1000, 10_000, 50_000, 100_000])
    print(json.dumps(results["totals"], indent=1), flush=True)
    if args.totals_ms:
        results["measured_totals"] = measured_totals(x, [int(v) for v in args.totals_ms.split(",")])
    ns = [int(v) for v in args.memory_ns.split(",") if v]
    results["memory"] = memory_table(ns, args.m, "auto")
    if not args.no_ray:
        results["ray"] = ray_table(x[:50_000], q)
        print(json.dumps(results["ray"], indent=1), flush=True)
    args.results.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.results}")
    if not args.no_plot:
        plot(results)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
