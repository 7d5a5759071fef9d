"""Near-copy (memorisation) flags, with a threshold calibrated on the training set itself.

Rule: for up to ``sample`` training items (drawn with the run's seed) take the distance to
their nearest *other* training item, in the run's embedding space and metric (exact search up to
``EXACT_MAX`` training items, the run's index with exact re-rank above); the threshold is
the ``quantile`` (default 1 %) of those distances. A match of a generated sample to a training
item at a distance at or below the threshold is a near copy: it is closer to that item than
99 % of the training items are to their own nearest neighbour. The rule, the quantile and the
threshold are recorded with the run.

``near_copy_embedder`` may name a copy-detection embedder (``sscd``, ``sscd-distilled``) whose
descriptors then define both the calibration and the distance of each match: copy detectors
separate "the same image, altered" from "another image of the same kind" better than the
features that rank contributors. It costs a second embedding pass over the training set
(measured here: 311 ms per image for int8 SSCD, 75 ms for the distilled model, on 2 cores), which
is why the run's own space stays the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator import index as ix
from gmvaluator._io import read_json, save_npy, write_json
from gmvaluator.errors import InputError, check_param
from gmvaluator.value import Valuator

DEFAULT_QUANTILE = 0.01
CALIBRATION_SAMPLE = 2000
#: Up to this many training items the calibration searches exactly; above, with the run's index.
EXACT_MAX = 50_000

RULE = (
    "near copy: distance <= the {quantile:g} quantile of nearest-neighbour distances "
    "from {sample} training items to the rest of the training set ({metric}, {search} search)"
)


def calibrate(
    valuator: Valuator,
    quantile: float = DEFAULT_QUANTILE,
    sample: int = CALIBRATION_SAMPLE,
    seed: int = 0,
) -> dict[str, Any]:
    """The near-copy threshold of a fitted valuator's training set, and the rule behind it."""
    ok = isinstance(quantile, (int, float)) and not isinstance(quantile, bool) and 0 < quantile < 1
    check_param("near_copy", "quantile", quantile, ok, "a float in the range (0, 1)")
    f = valuator._fitted()
    x = f.embeddings
    n = len(x)
    if n < 2:
        return {"rule": "no threshold: fewer than 2 training items", "threshold": None}
    rows = np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False)
    rows.sort()
    q = np.ascontiguousarray(x[rows], dtype=np.float32)
    if n <= EXACT_MAX:
        dist, idx = ix.exact_search(np.asarray(x, dtype=np.float32), q, min(3, n), valuator.metric)
    else:  # the run's own index with exact re-rank: a missed neighbour only raises the bar
        dist, idx = ix.search(f.index, x, q, min(3, n), f.params)
    # Drop each query's own row; with duplicates its own row may not come first.
    own = idx == rows[:, None]
    first_other = np.argmax(~own, axis=1)
    nn = dist[np.arange(len(rows)), first_other]
    threshold = float(np.quantile(nn, quantile))
    return {
        "rule": RULE.format(
            quantile=quantile,
            sample=len(rows),
            metric=valuator.metric,
            search="exact" if n <= EXACT_MAX else "index",
        ),
        "quantile": float(quantile),
        "sample": len(rows),
        "metric": valuator.metric,
        "threshold": threshold,
        "search": "exact" if n <= EXACT_MAX else "index",
        "train_nn_median": float(np.median(nn)),
    }


def flag(distances: np.ndarray, threshold: float | None) -> np.ndarray:
    """Bool (m, k): True where a match is a near copy of its training item."""
    d = np.asarray(distances, dtype=np.float64)
    if threshold is None:
        return np.zeros(d.shape, dtype=bool)
    return d <= threshold


# -- a copy-detection space of its own ---------------------------------------------------------
#: ``near_copy_embedder`` value that means "the run's own embedding space".
RUN_SPACE = "run"
DESCRIPTOR_DIR = "nearcopy"


def calibrate_descriptors(
    train: np.ndarray,
    quantile: float = DEFAULT_QUANTILE,
    sample: int = CALIBRATION_SAMPLE,
    seed: int = 0,
    space: str = "",
) -> dict[str, Any]:
    """The same rule as ``calibrate``, on (n, d) descriptors of the training items (cosine)."""
    v = Valuator(k=1, index="exact", metric="cosine").fit(train)
    info = calibrate(v, quantile, sample, seed)
    info["rule"] = f"{info['rule']}; {space} descriptors"
    info["space"] = space
    return info


def run_space_distances(valuator: Any, generated: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact distances, in the valuator's space, of each generated sample to its matched rows."""
    q = ix.prepare(generated, valuator.metric, "generated embeddings").astype(np.float64)
    x = valuator.fitted_.embeddings
    out = np.empty(rows.shape, dtype=np.float64)
    for s in range(0, len(q), 256):
        vecs = np.asarray(x[rows[s : s + 256].ravel()], dtype=np.float64)
        vecs = vecs.reshape(*rows[s : s + 256].shape, -1)
        out[s : s + 256] = ix.pairwise_distance(q[s : s + 256], vecs, valuator.metric)
    return out


def pair_distances(generated: np.ndarray, train: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Cosine distance (m, k) of each generated descriptor to the training rows it matched."""
    g = ix.prepare(generated, "cosine", "generated descriptors").astype(np.float64)
    t = ix.prepare(train, "cosine", "training descriptors")
    return 1.0 - np.einsum("md,mkd->mk", g, t[rows].astype(np.float64))


def descriptors(
    ds: Any, name: str, run_dir: Path | None, role: str, source_sha256: str | None = None
) -> np.ndarray:
    """Descriptors of a dataset with embedder ``name``, cached in ``RUN/nearcopy/<role>.npy``
    next to a JSON of the source hash and the embedder that made them."""
    from gmvaluator.embed import embed_dataset, embedder_fingerprint, get_embedder

    embedder = get_embedder(name)
    meta = {"source_sha256": source_sha256, "n": len(ds), "embedder": name}
    npy = None if run_dir is None else run_dir / DESCRIPTOR_DIR / f"{role}.npy"
    if npy is not None and source_sha256 is not None and npy.is_file():
        old = read_json(npy.with_suffix(".json"))
        if {key: old.get(key) for key in meta} == meta:
            return np.load(npy, allow_pickle=False)
    vecs = embed_dataset(ds, embedder, progress=False)
    if npy is not None and source_sha256 is not None:
        save_npy(npy, vecs)
        write_json(
            npy.with_suffix(".json"), {**meta, "fingerprint": embedder_fingerprint(embedder)}
        )
    return vecs


def cached_train_descriptors(run_dir: Path) -> np.ndarray:
    path = run_dir / DESCRIPTOR_DIR / "train.npy"
    if not path.is_file():
        raise InputError(
            f"{path} is missing: the run's near-copy descriptors were not kept. Re-run "
            "`gmvaluator value` on the run folder."
        )
    return np.load(path, allow_pickle=False)
