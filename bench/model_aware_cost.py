"""Cost of the model-aware re-score against full TRAK on the same model (not collected by pytest).

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/model_aware_cost.py [--n 10000] [--hidden 200]

The model is the reference CVAE (hidden width ``--hidden``, 200 by default: half the reference
width, to fit the run in about 15 minutes) trained on a seeded Fashion-MNIST subset of n items
(1 epoch: cost does not depend on how well it is trained); m generated samples, m/10 per class; the
valuator indexes raw pixels (as the evaluation's ``pixels`` valuers do).

- **re-score**: ``modelaware.rescore`` with the default ``RescoreSettings`` except the noise
  draws, cut from 8 / 32 to ``--draws`` / ``--output-draws`` (1 / 2) to fit this machine;
- **full TRAK**: the same featurizer and ``trak_scores`` with every training item in every
  shortlist and in the kernel (no sample);
- **dattri TRAK**: ``evaluate.peers`` (dattri's ``TRAKAttributor``) on the same model at
  ``--dattri-n`` items, its time per batch of 128 extrapolated to the batches of n (it
  regenerates its dense CPU projection for every batch, which makes a run at n unaffordable
  here and is most of its cost).

Gradient evaluations are items x draws. The scaling tables count the re-score's evaluations
exactly from its shortlists and kernel sample (no gradients needed) and estimate its time as
evaluations x the seconds per evaluation measured in the headline run; the parameter axis
measures the featurizer on 256 items of CVAEs of several widths. Peak memory is the largest RSS
sampled every 20 ms during a measurement (psutil), minus the RSS just before it.
Writes bench/results/model_aware_cost.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # dattri's progress bars

import argparse
import platform
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator.core.valuator import Valuator
from gmvaluator.evaluate.data import load_images
from gmvaluator.evaluate.generators.cvae import train_cvae
from gmvaluator.evaluate.valuers import embed_images
from gmvaluator.files import write_json
from gmvaluator.modelaware.features import GradientFeaturizer, featurize
from gmvaluator.modelaware.model import LOSS
from gmvaluator.modelaware.rescore import (
    RescoreSettings,
    kernel_rows,
    rescore,
    shortlists,
    trak_scores,
)
from gmvaluator.sources.base import Dataset, ImageItems

RESULTS = Path(__file__).resolve().parent / "results"
MB = 2**20


def machine() -> dict[str, Any]:
    import psutil
    import torch

    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if "model name" in ln), "?")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


class PeakRSS:
    """The largest resident set size sampled in a thread while the block runs (MiB)."""

    def __init__(self, every_s: float = 0.02) -> None:
        import psutil

        self.proc, self.every = psutil.Process(), every_s
        self.start = self.peak = 0

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    def report(self) -> dict[str, float]:
        return {"peak_rss_mb": self.peak / MB, "peak_rss_added_mb": (self.peak - self.start) / MB}


def measured(fn: Any) -> tuple[Any, dict[str, float]]:
    with PeakRSS() as mem:
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        cost = {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}
    return out, {**cost, **mem.report()}


def image_set(name: str, x: np.ndarray, y: np.ndarray) -> Dataset:
    ids = np.array([str(i) for i in range(len(x))])
    return Dataset(name=name, kind="image", ids=ids, items=ImageItems(array=x), labels=y)


def build(x: np.ndarray, y: np.ndarray, n: int, m: int, hidden: int, seed: int) -> dict[str, Any]:
    rows = np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))
    xt, yt = x[rows], y[rows]
    t0 = time.perf_counter()
    model = train_cvae(xt, yt, n_classes=10, epochs=1, hidden=hidden, seed=seed, progress=False)
    train_s = time.perf_counter() - t0
    gy = np.repeat(np.arange(10), m // 10)
    gx = model.sample(gy, seed=seed + 1)
    return {"x": xt, "y": yt, "gx": gx, "gy": gy, "model": model, "train_s": train_s}


def index(s: dict[str, Any]) -> tuple[Valuator, np.ndarray, Any]:
    train, _ = embed_images(s["x"], "pixels")
    gen, _ = embed_images(s["gx"], "pixels")
    valuator = Valuator(k=10, index="exact", random_state=0).fit(train)
    return valuator, gen, valuator.value(gen)


def n_params(model: Any) -> int:
    return int(sum(p.numel() for p in model.net.parameters()))


def run_rescore(s: dict[str, Any], settings: RescoreSettings) -> dict[str, Any]:
    valuator, gen, base = index(s)
    sets = (image_set("training", s["x"], s["y"]), image_set("generated", s["gx"], s["gy"]))
    with tempfile.TemporaryDirectory() as store:
        res, cost = measured(
            lambda: rescore(
                valuator, base, gen, [s["model"].gradient_model()], *sets, settings, store
            )
        )
    info = res.config["model_aware"]
    items = int(info["gradient_items"])
    return {
        **cost,
        "gradient_items": items,
        "kernel_items": int(info["kernel_items"]),
        "gradient_evaluations": items * settings.draws + len(s["gx"]) * settings.output_draws,
    }


def full_trak(s: dict[str, Any], settings: RescoreSettings) -> np.ndarray:
    """(m, n) TRAK scores of every training item, with the re-score's own featurizer and
    ``trak_scores`` (kernel over all n items)."""
    gm = s["model"].gradient_model()
    train, gen = image_set("training", s["x"], s["y"]), image_set("generated", s["gx"], s["gy"])
    with tempfile.TemporaryDirectory() as store:
        phi = featurize(
            GradientFeaturizer(gm, settings.features(False), LOSS),
            train,
            np.arange(len(train)),
            store,
        )
        psi = featurize(
            GradientFeaturizer(gm, settings.features(True), settings.output),
            gen,
            np.arange(len(gen)),
            store,
        )
    a, _ = trak_scores(phi, psi, phi, len(phi), settings.ridge)
    scores: np.ndarray = (phi.astype(np.float64) @ a).T
    return scores


def run_full(s: dict[str, Any], settings: RescoreSettings) -> dict[str, Any]:
    scores, cost = measured(lambda: full_trak(s, settings))
    n, m = len(s["x"]), len(s["gx"])
    assert scores.shape == (m, n)
    return {
        **cost,
        "gradient_items": n,
        "gradient_evaluations": n * settings.draws + m * settings.output_draws,
    }


def run_dattri(s: dict[str, Any], n_items: int, settings: RescoreSettings) -> dict[str, Any]:
    """dattri's TRAK on the first ``n_items`` training items and the m samples. Its time is
    extrapolated to n per batch of 128 items, not per item: on the CPU it regenerates its dense
    projection (parameters x dim normals) for every batch, which is most of its cost."""
    from gmvaluator.evaluate.peers import peer_attributions

    rows, batch = np.arange(n_items), 128
    options = {"proj_dim": settings.dim, "regularization": 1.0, "seed": settings.seed,
               "draws": settings.draws, "batch_size": batch}  # fmt: skip
    inputs = (s["model"], s["x"][rows], s["y"][rows], s["gx"], s["gy"])
    _, cost = measured(lambda: peer_attributions("trak", *inputs, **options))
    n, m = len(s["x"]), len(s["gx"])
    batches = -(-n_items // batch) + -(-m // batch)
    full_batches = -(-n // batch) + -(-m // batch)
    return {**cost, "items": n_items, "batch_size": batch, "batches": batches,
            "gradient_evaluations": (n_items + m) * settings.draws,
            "extrapolated_to_n": {"n": n, "gradient_evaluations": (n + m) * settings.draws,
                                  "batches": full_batches,
                                  "seconds": cost["seconds"] / batches * full_batches}}  # fmt: skip


def counted(
    valuator: Valuator, gen: np.ndarray, s: dict[str, Any], settings: RescoreSettings, m: int
) -> dict[str, int]:
    """The re-score's gradient evaluations, counted from its shortlists and kernel sample, for
    the first ``m`` generated samples (m/10 per class)."""
    per = m // 10
    pick = np.concatenate([np.flatnonzero(s["gy"] == c)[:per] for c in range(10)])
    _, rows, scored, _ = shortlists(valuator, gen[pick], s["y"], s["gy"][pick], settings)
    n = valuator.n_train_
    need = np.union1d(np.unique(rows[scored]), kernel_rows(n, settings))
    gen_evals = len(pick) * settings.output_draws
    return {
        "n": int(n),
        "m": len(pick),
        "candidates": settings.candidates,
        "gradient_items": len(need),
        "gradient_evaluations": len(need) * settings.draws + gen_evals,
        "full_trak_evaluations": int(n) * settings.draws + gen_evals,
    }


def scaling(
    x: np.ndarray,
    y: np.ndarray,
    head: dict[str, Any],
    settings: RescoreSettings,
    sizes: list[int],
    m0: int,
    ms: list[int],
    kps: list[int],
    rate: float,
) -> list[dict[str, Any]]:
    """Counted evaluations along n, m and K' (one axis at a time, the others at the headline's
    values); time estimated at ``rate`` seconds per evaluation."""
    rows = []
    for n in sizes:
        pick = np.sort(np.random.default_rng(n).choice(len(x), n, replace=False))
        sub = {**head, "x": x[pick], "y": y[pick]}
        valuator, gen, _ = index(sub)
        rows.append({"axis": "n", **counted(valuator, gen, sub, settings, m0)})
    valuator, gen, _ = index(head)
    for m in ms:
        rows.append({"axis": "m", **counted(valuator, gen, head, settings, m)})
    for kp in kps:
        rows.append(
            {
                "axis": "candidates",
                **counted(valuator, gen, head, replace(settings, candidates=kp), m0),
            }
        )
    for r in rows:
        r["estimated_seconds"] = r["gradient_evaluations"] * rate
        r["full_trak_estimated_seconds"] = r["full_trak_evaluations"] * rate
    return rows


def param_axis(
    x: np.ndarray, y: np.ndarray, widths: list[int], settings: RescoreSettings, seed: int
) -> list[dict[str, Any]]:
    """Seconds and memory per gradient evaluation of the featurizer on 256 items, for CVAEs of
    several hidden widths (parameter counts)."""
    out = []
    for hidden in widths:
        s = build(x, y, 1000, 10, hidden, seed)
        gm = s["model"].gradient_model()
        ds = image_set("training", s["x"], s["y"])
        with tempfile.TemporaryDirectory() as store:
            f = GradientFeaturizer(gm, settings.features(False), LOSS)
            _, cost = measured(
                lambda f=f, ds=ds, store=store: featurize(f, ds, np.arange(256), store)
            )
        evals = 256 * settings.draws
        out.append(
            {
                "hidden": hidden,
                "n_params": n_params(s["model"]),
                **cost,
                "gradient_evaluations": evals,
                "seconds_per_evaluation": cost["seconds"] / evals,
            }
        )
    return out


def print_tables(res: dict[str, Any]) -> None:
    h = res["headline"]
    print(f"\nn={h['n']}, m={h['m']}, parameters={h['n_params']:,}, settings {h['settings']}")
    print(
        f"{'method':<14} {'grad evals':>10} {'seconds':>9} {'cpu s':>8} {'peak RSS MB':>12} "
        f"{'added MB':>9}"
    )
    for name in ("rescore", "full_trak", "dattri_trak"):
        r = h[name]
        print(
            f"{name:<14} {r['gradient_evaluations']:>10,} {r['seconds']:>9.1f} "
            f"{r['cpu_seconds']:>8.1f} {r['peak_rss_mb']:>12.0f} {r['peak_rss_added_mb']:>9.0f}"
        )
    d = h["dattri_trak"]["extrapolated_to_n"]
    extrapolated = f"{d['gradient_evaluations']:>10,} {d['seconds']:>9.1f}  (extrapolated)"
    print(f"{'dattri @ n':<14} {extrapolated}")
    print(
        f"\n{'axis':<11} {'n':>6} {'m':>4} {'K_':>4} {'items':>6} {'evals':>7} "
        f"{'full evals':>10} {'est s':>7} {'full est s':>10}"
    )
    for r in res["scaling"]:
        print(
            f"{r['axis']:<11} {r['n']:>6} {r['m']:>4} {r['candidates']:>4} "
            f"{r['gradient_items']:>6} {r['gradient_evaluations']:>7} "
            f"{r['full_trak_evaluations']:>10} {r['estimated_seconds']:>7.0f} "
            f"{r['full_trak_estimated_seconds']:>10.0f}"
        )
    print(f"\n{'hidden':>6} {'params':>9} {'s/eval':>8} {'added MB':>9}")
    for r in res["parameters"]:
        print(
            f"{r['hidden']:>6} {r['n_params']:>9,} {r['seconds_per_evaluation']:>8.4f} "
            f"{r['peak_rss_added_mb']:>9.0f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--m", type=int, default=100)
    # half the reference CVAE's width (400) keeps the run near 15 minutes on 2 busy cores; the
    # parameter axis measures the cost per evaluation at 100, 200 and 400
    ap.add_argument("--hidden", type=int, default=200)
    ap.add_argument("--draws", type=int, default=1)
    ap.add_argument("--output-draws", type=int, default=2)
    ap.add_argument("--dattri-n", type=int, default=64)
    ap.add_argument("--sizes", default="2500,5000,10000,20000")
    ap.add_argument("--ms", default="20,50,100,200")
    ap.add_argument("--candidates", default="50,100,200,400")
    ap.add_argument("--widths", default="100,200,400")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "model_aware_cost.json"))
    args = ap.parse_args()
    ints = lambda text: [int(v) for v in text.split(",") if v]  # noqa: E731
    settings = RescoreSettings(draws=args.draws, output_draws=args.output_draws, seed=args.seed)
    t_start = time.perf_counter()
    x, y = load_images("builtin:fashion-mnist")
    head = build(x, y, args.n, max(args.m, max(ints(args.ms))), args.hidden, args.seed)
    # the headline uses m samples; the m axis counts up to the largest
    per = args.m // 10
    keep = np.concatenate([np.flatnonzero(head["gy"] == c)[:per] for c in range(10)])
    run = {**head, "gx": head["gx"][keep], "gy": head["gy"][keep]}
    print(f"trained on {args.n} items in {head['train_s']:.1f} s", file=sys.stderr)
    rescored = run_rescore(run, settings)
    print(f"re-score {rescored}", file=sys.stderr)
    full = run_full(run, settings)
    print(f"full TRAK {full}", file=sys.stderr)
    dattri = run_dattri(run, args.dattri_n, settings)
    print(f"dattri TRAK {dattri}", file=sys.stderr)
    rate = rescored["seconds"] / rescored["gradient_evaluations"]
    res: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "headline": {
            "n": args.n,
            "m": len(run["gx"]),
            "n_params": n_params(head["model"]),
            "train_seconds": head["train_s"],
            "settings": settings.to_dict(),
            "rescore": rescored,
            "full_trak": full,
            "dattri_trak": dattri,
            "rescore_cheaper": bool(
                rescored["gradient_evaluations"] < full["gradient_evaluations"]
                and rescored["seconds"] < full["seconds"]
            ),
        },
        "scaling": scaling(
            x,
            y,
            head,
            settings,
            ints(args.sizes),
            args.m,
            ints(args.ms),
            ints(args.candidates),
            rate,
        ),
        "parameters": param_axis(x, y, ints(args.widths), settings, args.seed),
    }
    res["total_seconds"] = time.perf_counter() - t_start
    print_tables(res)
    write_json(args.out, res)
    print(f"\nwrote {args.out} in {res['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
