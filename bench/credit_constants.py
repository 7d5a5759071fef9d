"""How the constants of the calibrated credit rule were chosen: a grid over the density's
neighbours K, its bandwidth factor and the rank's value weight, scored by C3 (AUROC of the
rank score, injected noise and photos low), on the same injected sets and reference VAE as
``gmvaluator evaluate c3``.

    OMP_NUM_THREADS=1 python bench/credit_constants.py digits     # chosen here
    OMP_NUM_THREADS=1 python bench/credit_constants.py fashion    # checked here, unchanged

Writes ``bench/results/credit_constants_<suite>.json`` and prints one line per setting (mean
AUROC and the range over seeds x draws).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from gmvaluator import Valuator
from gmvaluator.core import calibration as cal
from gmvaluator.core import density as dn
from gmvaluator.evaluate import stats
from gmvaluator.evaluate.data import inject, load_images
from gmvaluator.evaluate.generators.reference import train_reference
from gmvaluator.evaluate.valuers import embed_images
from gmvaluator.files import write_json

SUITES = {
    "digits": ("builtin:digits", 50, 50, (0, 1, 2)),
    "fashion": ("builtin:fashion-mnist:train[:10000]", 100, 100, (0, 1)),
}
KS = (25, 50, 100, 200)
BANDWIDTHS = (1.0, 2.0, 4.0)
WEIGHTS = (0.0, 0.1, 0.3, 1.0)


def repeats(suite: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(training embeddings, generated embeddings, injected mask) per seed and draw."""
    spec, n_noise, n_photos, seeds = SUITES[suite]
    images, labels = load_images(spec)
    n_classes = int(labels.max()) + 1
    out = []
    for seed in seeds:
        x, y, mask = inject(images, labels, n_noise, n_photos, seed=seed)
        model = train_reference("cvae", x, y, n_classes=n_classes, seed=seed)
        for draw in range(2):
            gen = model.sample(np.repeat(np.arange(n_classes), 100), seed=1000 * seed + draw)
            out.append((embed_images(x, "pixels")[0], embed_images(gen, "pixels")[0], mask))
    return out


def grid(train: np.ndarray, gen: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    dn.NEIGHBOURS = max(KS)  # one search for the largest K; smaller K are its first columns
    valuator = Valuator(k=10, index="exact").fit(train)
    r = valuator.value(gen)
    c: cal.Calibration = valuator.credit_rule_.calibration  # type: ignore[assignment]
    weights = r.quality * r.share
    out = {"paper value": stats.auroc(-Valuator(k=10, credit="paper").fit(train).value(gen).values,
                                      mask)}  # fmt: skip
    lex = np.lexsort((dn.density(r.neighbours, weights, c.bandwidth), r.values))
    rank = np.empty(len(lex))
    rank[lex] = np.arange(len(lex))
    out["value, then density (K 200, h 2)"] = stats.auroc(-rank, mask)
    for k in KS:
        nb = dn.GeneratedNeighbours(r.neighbours.distances[:, :k], r.neighbours.rows[:, :k])
        for h in BANDWIDTHS:
            dens = dn.density(nb, weights, h * max(c.median_nn, c.floor))
            for w in WEIGHTS:
                score = dens + w * np.log1p(r.values / r.values.mean())
                out[f"K {k}, h {h:g} x median nn, weight {w:g}"] = stats.auroc(-score, mask)
    return out


def main(suite: str) -> None:
    rows = [grid(*rep) for rep in repeats(suite)]
    summary = {
        name: {"mean": float(np.mean([r[name] for r in rows])),
               "min": float(np.min([r[name] for r in rows])),
               "max": float(np.max([r[name] for r in rows]))}
        for name in rows[0]
    }  # fmt: skip
    for name, s in summary.items():
        print(f"{name:42s} {s['mean']:.3f} [{s['min']:.3f}, {s['max']:.3f}]")
    out = Path(__file__).resolve().parent / "results" / f"credit_constants_{suite}.json"
    write_json(out, {"suite": suite, "repeats": len(rows), "auroc": summary})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "digits")
