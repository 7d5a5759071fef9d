"""Quality backends by name, and the scores q_j of a generated set.

    none            1.0 for every sample
    brisque, piqe   no-reference image quality (``gmvaluator.quality.images``)
    sharpness       scikit-image blur and noise estimates
    maniqa[:PATH]   MANIQA through pyiqa, from a local weights file
    file:PATH       a CSV with columns id,quality (a path ending in .csv works too)

A Python callable (or any object with ``score(items, ids)``) is accepted as well: it receives
a list of items (PIL images or strings) and returns one score per item, higher meaning better.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from gmvaluator.errors import InputError, check_param
from gmvaluator.quality.normalize import normalize

_BATCH = 64


@runtime_checkable
class QualityScorer(Protocol):
    """Scores items; higher is better. ``name`` and ``settings()`` are recorded with a run."""

    name: str

    def settings(self) -> dict[str, Any]: ...

    def score(self, items: Sequence[Any], ids: Sequence[Any]) -> np.ndarray: ...


class NoQuality:
    """q_j = 1 for every generated sample: credit is not weighted by quality."""

    name = "none"

    def settings(self) -> dict[str, Any]:
        return {}

    def score(self, items: Sequence[Any], ids: Sequence[Any]) -> np.ndarray:
        return np.ones(len(items), dtype=np.float64)


class FileQuality:
    """Scores read from a CSV with columns ``id`` and ``quality``, one row per generated id."""

    name = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"quality file {self.path} does not exist. Check the --quality path.")

    def settings(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def score(self, items: Sequence[Any], ids: Sequence[Any]) -> np.ndarray:
        return read_quality(self.path, np.asarray(ids))


class CallableQuality:
    """A user function over a list of items that returns one score per item."""

    def __init__(self, fn: Callable[[list[Any]], Any]) -> None:
        self.fn = fn
        self.name = f"callable:{getattr(fn, '__qualname__', type(fn).__name__)}"

    def settings(self) -> dict[str, Any]:
        return {}

    def score(self, items: Sequence[Any], ids: Sequence[Any]) -> np.ndarray:
        out = np.asarray(self.fn(list(items)), dtype=np.float64).reshape(-1)
        if len(out) != len(items):
            raise InputError(
                f"quality function {self.name!r} returned {len(out)} scores for {len(items)} "
                "items; it must return one score per item."
            )
        return out


def known_quality() -> list[str]:
    """Names accepted by ``get_quality`` (plus ``file:PATH`` and ``maniqa:PATH``)."""
    return ["brisque", "file:PATH", "maniqa", "none", "piqe", "sharpness"]


def get_quality(spec: Any, **options: Any) -> QualityScorer:
    """A quality backend from a name, ``file:PATH``, a CSV path, a callable or a scorer."""
    from gmvaluator.quality import images

    if isinstance(spec, Path):
        return FileQuality(spec)
    if not isinstance(spec, str):
        if hasattr(spec, "score") and hasattr(spec, "name"):
            return spec  # type: ignore[no-any-return]
        if callable(spec):
            return CallableQuality(spec)
        raise InputError(
            f"quality {spec!r} is neither a name, a path nor a callable. "
            f"Choose one of: {', '.join(known_quality())}."
        )
    name, _, arg = spec.partition(":")
    if name == "file" and arg:
        return FileQuality(arg)
    if name == "maniqa":
        return images.ManiqaScorer(weights=arg or None, **options)
    makers: dict[str, Callable[..., QualityScorer]] = {
        "none": NoQuality,
        "brisque": images.BrisqueScorer,
        "piqe": images.PiqeScorer,
        "sharpness": images.SharpnessScorer,
    }
    if spec in makers:
        return makers[spec](**options)
    if spec.lower().endswith(".csv") or Path(spec).is_file():
        return FileQuality(spec)
    raise InputError(
        f"unknown quality backend {spec!r}. Choose one of: {', '.join(known_quality())}."
    )


def describe_quality(spec: Any, norm: str) -> dict[str, Any]:
    """What a run records about its quality weights."""
    from gmvaluator.quality.normalize import NORMS

    check_param("quality", "norm", norm, norm in NORMS, f"one of {NORMS}")
    scorer = get_quality(spec)
    return {
        "backend": scorer.name,
        "version": getattr(scorer, "version", None),
        "settings": dict(scorer.settings()),
        "norm": norm,
    }


def quality_scores(spec: Any, ds: Any, norm: str = "raw", *, progress: bool = False) -> np.ndarray:
    """q_j for every item of a Dataset ``ds``: raw backend scores, then ``normalize(norm)``."""
    scorer = get_quality(spec)
    ids = np.asarray(ds.ids)
    n = len(ds)
    if isinstance(scorer, (NoQuality, FileQuality)):
        raw = scorer.score(range(n), ids)  # type: ignore[arg-type]
    else:
        from gmvaluator.progress import bar as progress_bar

        raw = np.empty(n, dtype=np.float64)
        desc = f"quality {ds.name} ({scorer.name})"
        with progress_bar(n, desc, progress=progress) as bar:
            for s in range(0, n, _BATCH):
                stop = min(n, s + _BATCH)
                part = np.asarray(
                    scorer.score(ds.items[s:stop], ids[s:stop].tolist()), dtype=np.float64
                )
                if part.shape != (stop - s,):
                    raise InputError(
                        f"quality backend {scorer.name!r} returned {part.size} scores for "
                        f"{stop - s} items; it must return one score per item."
                    )
                raw[s:stop] = part
                bar.update(stop - s)
    q = normalize(raw, norm, ids)
    bad = q < 0
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"quality of generated sample {str(ids[j])!r} is {q[j]} with --quality-norm {norm}; "
            "weights must be >= 0. Use --quality-norm minmax or rank, or fix the scores."
        )
    return q


def read_quality(path: str | Path, generated_ids: np.ndarray) -> np.ndarray:
    """q_j from a CSV with columns ``id`` and ``quality``, one row per generated sample."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"quality file {path} does not exist. Check the --quality path.")
    try:
        df = pd.read_csv(path, dtype={"id": str})
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"quality file {path} is not a readable CSV: {exc}.") from exc
    missing_cols = {"id", "quality"} - set(df.columns)
    if missing_cols:
        raise InputError(
            f"quality file {path} needs columns 'id' and 'quality'; it has {list(df.columns)}."
        )
    if df["id"].duplicated().any():
        dup = df.loc[df["id"].duplicated(), "id"].iloc[0]
        raise InputError(f"quality file {path} lists id {dup!r} more than once.")
    scores = pd.to_numeric(df["quality"], errors="coerce")
    lookup = dict(zip(df["id"], scores, strict=False))
    absent = [g for g in generated_ids if g not in lookup]
    if absent:
        raise InputError(
            f"quality file {path} has no score for generated sample {str(absent[0])!r} "
            f"({len(absent)} missing). Add a row for every generated id."
        )
    return np.array([lookup[g] for g in generated_ids], dtype=np.float64)
