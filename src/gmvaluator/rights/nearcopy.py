"""Near-copy (memorisation) flags, with a threshold calibrated on the training set itself.

Rule: for up to ``sample`` training items (drawn with the run's seed) take the distance to
their nearest *other* training item, in the run's embedding space and metric (exact search up to
``EXACT_MAX`` training items, the run's index with exact re-rank above); the threshold is
the ``quantile`` (default 1 %) of those distances. A match of a generated sample to a training
item at a distance at or below the threshold is a near copy: it is closer to that item than
99 % of the training items are to their own nearest neighbour. The rule, the quantile and the
threshold are recorded with the run.

``near_copy_embedder`` chooses the space the flags are judged in:

- ``auto`` (the default): for images, when the SSCD models are installed, the distilled SSCD
  copy-detection descriptors of the *matched* items only (``matched_space``); otherwise (text,
  precomputed embeddings, no SSCD) the run's own space. Copy detectors separate "the same image,
  altered" from "another image of the same kind" better than the features that rank
  contributors, and describing only the matched items keeps the cost at about m * k + the
  calibration sample instead of a pass over the whole training set.
- ``run``: the run's own embedding space and metric, as above.
- ``sscd`` / ``sscd-distilled``: descriptors of *every* training item (a second embedding pass
  over the training set: about 93 ms per image for int8 SSCD and 16 ms for the distilled model
  here, bench/results/embed_throughput.json), calibrated exactly on the training set's own
  nearest neighbours.

On matched items the calibration sees only each sampled training item's ``NEIGHBOURS`` nearest
other items in the run's space: the nearest of them in descriptor space stands for its nearest
neighbour. A neighbour that the run's space ranks further away can only be missed, which makes
the measured distances too large and the threshold higher: more matches are flagged, never fewer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator import search as ix
from gmvaluator.core.valuator import Valuator
from gmvaluator.errors import InputError, check_param
from gmvaluator.files import read_json, save_npy, write_json
from gmvaluator.progress import bar

DEFAULT_QUANTILE = 0.01
#: The name of the calibration's progress bar.
CALIBRATE_LABEL = "near copies: calibrate"
CALIBRATION_SAMPLE = 2000
#: Up to this many training items the calibration searches exactly; above, with the run's index.
EXACT_MAX = 50_000

NO_THRESHOLD: dict[str, Any] = {
    "rule": "no threshold: fewer than 2 training items",
    "threshold": None,
}
RULE = (
    "near copy: distance <= the {quantile:g} quantile of nearest-neighbour distances "
    "from {sample} training items to the rest of the training set ({metric}, {search} search)"
)


def calibrate(
    valuator: Valuator,
    quantile: float = DEFAULT_QUANTILE,
    sample: int = CALIBRATION_SAMPLE,
    seed: int = 0,
    *,
    progress: bool = False,
) -> dict[str, Any]:
    """The near-copy threshold of a fitted valuator's training set, and the rule behind it."""
    rows = _calibration_rows(valuator, quantile, sample, seed)
    if rows is None:
        return dict(NO_THRESHOLD)
    x = valuator.embeddings_
    n = len(x)
    q = np.ascontiguousarray(x[rows], dtype=np.float32)
    label = CALIBRATE_LABEL
    if n <= EXACT_MAX:
        dist, idx = ix.exact_search(np.asarray(x, dtype=np.float32), q, min(3, n),
                                    valuator.metric, progress=progress, label=label)  # fmt: skip
    else:  # the run's own index with exact re-rank: a missed neighbour only raises the bar
        dist, idx = ix.search(valuator.faiss_index_, x, q, min(3, n), valuator.index_params_,
                              progress=progress, label=label)  # fmt: skip
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


def _calibration_rows(
    valuator: Valuator, quantile: float, sample: int, seed: int
) -> np.ndarray | None:
    """Check ``quantile`` and draw the sorted training rows whose nearest-neighbour distances
    set the threshold; None when the training set has fewer than 2 items."""
    ok = isinstance(quantile, (int, float)) and not isinstance(quantile, bool) and 0 < quantile < 1
    check_param("near_copy", "quantile", quantile, ok, "a float in the range (0, 1)")
    n = len(valuator.embeddings_)
    if n < 2:
        return None
    rows = np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False)
    rows.sort()
    return rows


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
    *,
    progress: bool = False,
) -> dict[str, Any]:
    """The same rule as ``calibrate``, on (n, d) descriptors of the training items (cosine)."""
    v = Valuator(k=1, index="exact", metric="cosine").fit(train)
    info = calibrate(v, quantile, sample, seed, progress=progress)
    info["rule"] = f"{info['rule']}; {space} descriptors"
    info["space"] = space
    return info


def run_space_distances(valuator: Any, generated: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact distances, in the valuator's space, of each generated sample to its matched rows."""
    q = ix.prepare(generated, valuator.metric, "generated embeddings").astype(np.float64)
    x = valuator.embeddings_
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
    ds: Any, name: str, run_dir: Path | None, role: str, source_sha256: str | None = None,
    *, progress: bool = False,
) -> np.ndarray:  # fmt: skip
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
    vecs = embed_dataset(ds, embedder, progress=progress)
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


# -- descriptors of the matched items only --------------------------------------------------
AUTO = "auto"
#: The descriptors ``auto`` uses for images: the distilled SSCD student, several times faster.
AUTO_EMBEDDER = "sscd-distilled"
#: Run-space neighbours of each calibration item that are described to find its nearest one.
NEIGHBOURS = 3
#: Calibration items on matched descriptors (each costs up to 1 + NEIGHBOURS descriptors).
MATCHED_SAMPLE = 300
SPACES = (AUTO, RUN_SPACE, "sscd", "sscd-distilled")
#: ``auto`` keeps smaller images in the run's space: SSCD sees them upscaled (to 288 pixels),
#: where pixel noise counts for more than the content. Measured on Fashion-MNIST (28 pixels):
#: a copy with +-8 grey levels of noise lies 0.13-0.33 from its original in SSCD cosine
#: distance, beyond the 0.11 that 1 % of training items lie from their nearest neighbour.
MIN_SIDE = 64


@dataclass(frozen=True)
class CopySpace:
    """Where near copies are judged: ``mode`` is ``run`` (the run's embeddings), ``all``
    (descriptors of every training item) or ``matched`` (descriptors of matched items only)."""

    mode: str
    embedder: str | None = None
    reason: str = ""

    def describe(self) -> dict[str, Any]:
        return {"space": self.embedder or RUN_SPACE, "descriptors": self.mode,
                "space_reason": self.reason}  # fmt: skip


def check_space(name: str) -> None:
    check_param("near_copy", "embedder", name, name in SPACES, f"one of {SPACES}")


def choose_space(name: str, kinds: tuple[str, ...], side: int | None = None) -> CopySpace:
    """The space ``near_copy_embedder=name`` means for a run on items of ``kinds`` (training,
    generated) whose images are at least ``side`` pixels on their short side."""
    check_space(name)
    if name == RUN_SPACE:
        return CopySpace("run", None, "--near-copy-embedder run")
    if name != AUTO:
        return CopySpace("all", name, f"--near-copy-embedder {name}")
    if any(kind != "image" for kind in kinds):
        return CopySpace("run", None, "auto: not images, which have no copy-detection model")
    if side is not None and side < MIN_SIDE:
        return CopySpace(
            "run", None, f"auto: images of {side} pixels, under the {MIN_SIDE} that SSCD needs"
        )
    missing = sscd_missing()
    if missing:
        return CopySpace("run", None, f"auto: no copy-detection model ({missing})")
    return CopySpace("matched", AUTO_EMBEDDER, "auto: images, and the SSCD models are installed")


def smallest_side(ds: Any, sample: int = 8) -> int | None:
    """The shortest image side among the first ``sample`` items of an image Dataset."""
    if ds.kind != "image" or len(ds) == 0:
        return None
    array = getattr(ds.items, "array", None)
    if array is not None:
        return int(min(array.shape[1:3]))
    return min(min(ds.items[i].size) for i in range(min(sample, len(ds))))


def recorded_space(info: dict[str, Any], requested: str = RUN_SPACE) -> CopySpace:
    """The space a finished run judged near copies in, from its ``run.json`` entry; runs that
    recorded no choice judged them where ``near_copy_embedder`` (``requested``) said."""
    mode = info.get("descriptors")
    if mode is None:
        if requested == RUN_SPACE:
            return CopySpace("run", None, "--near-copy-embedder run")
        return CopySpace("all", requested, f"--near-copy-embedder {requested}")
    embedder = None if mode == "run" else str(info.get("space"))
    return CopySpace(str(mode), embedder, str(info.get("space_reason", "")))


def cache_root_of(record: dict[str, Any]) -> Path | None:
    """The shared embedding cache a run used (``run.json``), or None when it used none."""
    folder = ((record.get("embedding_cache") or {}).get("train") or {}).get("folder")
    return None if not folder else Path(folder).parent


def sscd_missing() -> str:
    """Why the SSCD models cannot run here, or "" when they can."""
    from gmvaluator.embed import get_embedder
    from gmvaluator.errors import MissingDependencyError

    try:
        get_embedder(AUTO_EMBEDDER)
    except MissingDependencyError as exc:
        return str(exc)
    return ""


class RowDescriptors:
    """Descriptors of rows of a training Dataset, computed on first use and kept.

    Rows are looked up in the shared embedding cache ``cache`` (an ``EmbeddingCache`` of the
    descriptor embedder, or None) before they are embedded, and new ones are added to it.
    """

    def __init__(
        self, ds: Any, embedder: Any, cache: Any = None, batch_size: int = 32,
        progress: bool = False,
    ) -> None:  # fmt: skip
        self.ds = ds
        self.embedder = embedder
        self.cache = cache
        self.batch_size = batch_size
        self.progress = progress  # a bar while rows are being described
        self._rows: dict[int, int] = {}
        self._vecs: np.ndarray | None = None
        self._lock = threading.Lock()  # the service asks from several threads
        self.embedded = 0

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), dim) float32 descriptors of training rows ``rows``."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        with self._lock:
            new = np.array(sorted({int(r) for r in rows} - self._rows.keys()), dtype=np.int64)
            if len(new):
                self._add(new, self._compute(new))
            assert self._vecs is not None
            return self._vecs[[self._rows[int(r)] for r in rows]]

    def _compute(self, rows: np.ndarray) -> np.ndarray:
        found = np.zeros(len(rows), dtype=bool)
        cached = keys = None
        if self.cache is not None:
            from gmvaluator.embed.cache import item_keys

            keys = item_keys(self.ds, rows)
            found, cached = self.cache.get(keys)
        missing = rows[~found]
        items = self.ds.items
        parts = []
        desc = f"near copies: describe ({self.embedder.name})"
        with bar(len(missing), desc, progress=self.progress) as shown:
            for part in np.array_split(missing, -(-len(missing) // self.batch_size) or 1):
                if len(part):
                    batch = self.embedder.embed_batch([items[int(r)] for r in part])
                    parts.append(np.asarray(batch, np.float32))
                    shown.update(len(part))
        fresh = np.concatenate(parts) if parts else None
        dim = (fresh if fresh is not None else cached).shape[1]  # type: ignore[union-attr]
        out = np.empty((len(rows), dim), dtype=np.float32)
        if cached is not None:
            out[found] = cached
        if fresh is not None:
            out[~found] = fresh
            self.embedded += len(fresh)
            if self.cache is not None and keys is not None:
                self.cache.put(keys[~found], fresh)
        return out

    def _add(self, rows: np.ndarray, vecs: np.ndarray) -> None:
        start = 0 if self._vecs is None else len(self._vecs)
        self._vecs = vecs if self._vecs is None else np.concatenate([self._vecs, vecs])
        for j, r in enumerate(rows.tolist()):
            self._rows[r] = start + j


def calibrate_matched(
    valuator: Valuator,
    describe: Any,
    keep: np.ndarray | None = None,
    quantile: float = DEFAULT_QUANTILE,
    sample: int = MATCHED_SAMPLE,
    neighbours: int = NEIGHBOURS,
    seed: int = 0,
    space: str = AUTO_EMBEDDER,
    *,
    progress: bool = False,
) -> dict[str, Any]:
    """The near-copy threshold in a descriptor space known only for the rows asked for.

    ``describe(rows)`` gives descriptors of training rows (rows of the whole source; ``keep``
    maps the valuator's rows onto them when it indexes a subset). For ``sample`` training items
    the nearest other item in descriptor space among their ``neighbours`` nearest in the run's
    space stands for their nearest neighbour (see the module docstring).
    """
    rows = _calibration_rows(valuator, quantile, sample, seed)
    if rows is None:
        return dict(NO_THRESHOLD)
    x = valuator.embeddings_
    n = len(x)
    kn = min(n, neighbours + 1)
    _, cand = valuator.candidates(
        np.asarray(x[rows], dtype=np.float32), kn, exact=True, progress=progress
    )
    valid = (cand >= 0) & (cand != rows[:, None])
    uniq = np.unique(np.concatenate([rows, cand[valid]]))
    source_rows = uniq if keep is None else np.asarray(keep)[uniq]
    vecs = ix.prepare(describe(source_rows), "cosine", "training descriptors")
    own = vecs[np.searchsorted(uniq, rows)]
    other = vecs[np.searchsorted(uniq, np.where(valid, cand, rows[:, None]))]
    dist = 1.0 - np.einsum("sd,skd->sk", own.astype(np.float64), other.astype(np.float64))
    nn = np.where(valid, np.clip(dist, 0.0, 2.0), np.inf).min(axis=1)
    nn = nn[np.isfinite(nn)]
    threshold = float(np.quantile(nn, quantile)) if len(nn) else None
    return {
        "rule": (
            f"near copy: distance <= the {quantile:g} quantile of nearest-neighbour distances "
            f"of {len(rows)} training items, each to the nearest of its {kn - 1} nearest other "
            f"training items in the run's space; {space} descriptors, cosine"
        ),
        "quantile": float(quantile),
        "sample": len(rows),
        "neighbours": kn - 1,
        "metric": "cosine",
        "threshold": threshold,
        "search": "run-space neighbours",
        "train_nn_median": float(np.median(nn)) if len(nn) else None,
        "space": space,
    }


def matched_distances(generated: np.ndarray, describe: Any, rows: np.ndarray) -> np.ndarray:
    """Cosine distance (m, k) of generated descriptors to the training ``rows`` they matched,
    describing each distinct row once."""
    uniq, at = np.unique(rows, return_inverse=True)
    return pair_distances(generated, describe(uniq), at.reshape(rows.shape))
