"""LDS of the calibrated credit rule against the paper's, paired on the same retrained models
and generated samples, on independent replicates (digits, VAE, R = 32 equal halves).

    OMP_NUM_THREADS=1 python bench/lds_paired.py

Prints, per replicate seed, both LDS and the mean paired difference with a percentile bootstrap
interval over generated samples; writes ``bench/results/lds_paired.json``.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np

from gmvaluator.evaluate import ValuerSpec, criteria, stats
from gmvaluator.evaluate import experiments as ex
from gmvaluator.evaluate.data import load_images
from gmvaluator.files import write_json

SPECS = (ValuerSpec("calibrated"), ValuerSpec("paper", credit="paper"))


def replicate(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, object]:
    """One ``run_lds`` whose per-sample scores are kept for both rules."""
    kept: list[np.ndarray] = []
    lds = criteria.lds

    def keep(*args: object) -> np.ndarray:
        kept.append(lds(*args))  # type: ignore[arg-type]
        return kept[-1]

    with mock.patch.object(criteria, "lds", keep):
        ex.run_lds(x, y, list(SPECS), n_models=32, per_class=10, seed=seed)
    a, b = kept
    ok = np.isfinite(a) & np.isfinite(b)
    return {
        "seed": seed,
        "calibrated": float(a[ok].mean()),
        "paper": float(b[ok].mean()),
        "difference": stats.bootstrap(a[ok] - b[ok], seed=seed).to_dict(),
    }


def main() -> None:
    x, y = load_images("builtin:digits")
    rows = [replicate(x, y, seed) for seed in (0, 1, 2)]
    for r in rows:
        d = r["difference"]
        lo, hi = d["ci95"]
        print(f"seed {r['seed']}: calibrated {r['calibrated']:.3f}, paper {r['paper']:.3f}, "
              f"difference {d['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]")  # fmt: skip
    out = Path(__file__).resolve().parent / "results" / "lds_paired.json"
    write_json(out, {"replicates": rows})


if __name__ == "__main__":
    main()
