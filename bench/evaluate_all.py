"""Run the evaluation criteria and write JSON under bench/results/.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/evaluate_all.py digits
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/evaluate_all.py fashion
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/evaluate_all.py fashion-effnet
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/evaluate_all.py sensitivity

Each suite writes ``bench/results/<suite>_<criterion>.json`` and ``bench/results/machine.json``.
Pass criterion names after the suite to run only those (e.g. ``digits lds c3``).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gmvaluator.evaluate import ValuerSpec, baselines, group_labels, sensitivity_variants
from gmvaluator.evaluate import experiments as ex
from gmvaluator.evaluate.data import groups_for, load_images
from gmvaluator.files import write_json

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    import torch
    from threadpoolctl import threadpool_info

    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.is_available(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "blas": [
            {k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for info in threadpool_info()
        ],
    }


def digits_suite() -> dict[str, Callable[[], dict[str, Any]]]:
    spec = "builtin:digits"
    x, y = load_images(spec)
    full = baselines("pixels")
    rep = {"seeds": (0, 1, 2), "draws": 2}
    return {
        "c1": lambda: ex.run_identical(x, y, full, per_class=20, **rep),
        "c2": lambda: ex.run_identical(
            x,
            y,
            full,
            attribute=group_labels(y, groups_for(spec)),
            ks=(5, 10, 15),
            per_class=20,
            **rep,
        ),
        "c3": lambda: ex.run_ood(x, y, full, n_noise=50, n_photos=50, per_class=100, **rep),
        "c3_gmm": lambda: ex.run_ood(
            x, y, full, n_noise=50, n_photos=50, per_class=100, family="gmm", **rep
        ),
        "membership": lambda: ex.run_membership(x, y, full, per_class=100, **rep),
        "deletion": lambda: ex.run_deletion(
            x,
            y,
            ValuerSpec("default"),
            fraction=0.1,
            seeds=(0, 1, 2),
            per_class=10,
            feature_embedders=("pixels", "efficientnet-lite0"),
        ),
        "lds": lambda: ex.run_lds(x, y, full, n_models=32, per_class=10),
        "lds_gmm": lambda: ex.run_lds(x, y, full, n_models=32, per_class=10, family="gmm"),
        "lds_diffusion": lambda: ex.run_lds(
            x,
            y,
            [spec for spec in full if spec.name in ("default", "sqeuclidean", "random")],
            n_models=32,
            per_class=10,
            family="diffusion",
            epochs=60,
        ),
        "c4": lambda: ex.run_efficiency(
            x,
            x[:200],
            [spec for spec in full if spec.name in ("default", "exact-nn", "ivfpq", "rerank-none")],
        ),
        **{f"c1_{family}": _family_c1(x, y, family) for family in ("gmm", "diffusion", "gan")},
    }


def _family_c1(x: Any, y: Any, family: str) -> Callable[[], dict[str, Any]]:
    specs = [ValuerSpec("default"), ValuerSpec("random", random=True)]
    return lambda: ex.run_identical(x, y, specs, family=family, seeds=(0,), draws=2, per_class=20)


def fashion_suite() -> dict[str, Callable[[], dict[str, Any]]]:
    big = "builtin:fashion-mnist:train"
    small = "builtin:fashion-mnist:train[:10000]"
    xb, yb = load_images(big)
    xs, ys = load_images(small)
    specs = [
        ValuerSpec("default"),
        ValuerSpec("ivfpq", index="ivfpq"),
        ValuerSpec("random", random=True),
    ]
    most = baselines("pixels")
    rep = {"seeds": (0, 1), "draws": 2}
    return {
        "c1": lambda: ex.run_identical(xb, yb, specs, per_class=30, **rep),
        "c2": lambda: ex.run_identical(
            xs,
            ys,
            specs,
            attribute=group_labels(ys, groups_for(big)),
            ks=(5, 10, 15),
            per_class=30,
            **rep,
        ),
        "c3": lambda: ex.run_ood(xs, ys, most, n_noise=100, n_photos=100, per_class=100, **rep),
        "membership": lambda: ex.run_membership(xs, ys, most, per_class=100, **rep),
        "deletion": lambda: ex.run_deletion(
            xs[:5000],
            ys[:5000],
            ValuerSpec("default"),
            fraction=0.1,
            seeds=(0,),
            draws=2,
            per_class=20,
        ),
        "c4": lambda: ex.run_efficiency(xb, xb[:300], specs[:2]),
    }


def fashion_effnet_suite() -> dict[str, Callable[[], dict[str, Any]]]:
    spec = "builtin:fashion-mnist:train[:3000]"
    x, y = load_images(spec)
    specs = [
        ValuerSpec("default", embedder="efficientnet-lite0"),
        ValuerSpec("raw-pixels"),
        ValuerSpec("random", random=True),
    ]
    rep = {"seeds": (0,), "draws": 2, "per_class": 10}
    return {
        "c1": lambda: ex.run_identical(x, y, specs, **rep),
        "membership": lambda: ex.run_membership(x, y, specs, **rep),
        "c3": lambda: ex.run_ood(x, y, specs, n_noise=50, n_photos=50, **rep),
        "deletion": lambda: ex.run_deletion(
            x[:2000],
            y[:2000],
            ValuerSpec("default"),
            fraction=0.1,
            seeds=(0,),
            draws=2,
            per_class=10,
            feature_embedders=("pixels", "efficientnet-lite0"),
        ),
    }


def sensitivity_suite() -> dict[str, Callable[[], dict[str, Any]]]:
    """C1 and membership as k, the PQ settings, re-rank and the embedder vary."""
    xd, yd = load_images("builtin:digits")
    xf, yf = load_images("builtin:fashion-mnist:train[:2000]")
    return {
        "digits": lambda: ex.run_sensitivity(
            xd,
            yd,
            sensitivity_variants(("pixels", "sscd-distilled")),
            seeds=(0, 1, 2),
            draws=2,
            per_class=30,
        ),
        "fashion": lambda: ex.run_sensitivity(
            xf,
            yf,
            sensitivity_variants(("pixels", "efficientnet-lite0", "sscd-distilled")),
            seeds=(0, 1),
            draws=1,
            per_class=20,
        ),
    }


SUITES = {
    "digits": digits_suite,
    "fashion": fashion_suite,
    "fashion-effnet": fashion_effnet_suite,
    "sensitivity": sensitivity_suite,
}


def main(argv: list[str]) -> None:
    suite = argv[0] if argv else "digits"
    if suite not in SUITES:
        raise SystemExit(f"unknown suite {suite!r}; use one of {', '.join(SUITES)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "machine.json", machine())
    runs = SUITES[suite]()
    for name in argv[1:] or list(runs):
        t0 = time.perf_counter()
        result = runs[name]()
        result["wall_seconds"] = time.perf_counter() - t0
        write_json(RESULTS / f"{suite}_{name}.json", result)
        print(f"{suite} {name}: {result['wall_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
