"""Turning raw quality scores into the weights q_j of the formula.

Every backend returns raw scores where higher means better and 0 is the floor. How they become
q_j is an explicit choice, recorded with the run:

- ``raw``: the scores as they are (a CSV of id,quality keeps its own scale).
- ``minmax``: (s - min) / (max - min) over the generated set; the worst sample gets 0 and hands
  out no credit, the best gets 1. All equal scores give all ones.
- ``rank``: the rank of each score divided by the number of samples, in (0, 1]; tied scores
  share the highest of their ranks, so equal scores all get 1. Robust to outliers and to the
  scale of the backend.
- ``divide-by-max``: s / max; keeps ratios between samples, the best gets 1.

``minmax``, ``rank`` and ``divide-by-max`` are relative to the generated set being valued, so
appending a batch later normalises that batch on its own.
"""

from __future__ import annotations

import numpy as np

from gmvaluator.errors import InputError, check_param

NORMS = ("raw", "minmax", "rank", "divide-by-max")


def normalize(scores: np.ndarray, method: str = "raw", ids: np.ndarray | None = None) -> np.ndarray:
    """Scores (m,) as float64 weights by ``method`` (see the module docstring)."""
    check_param("normalize", "method", method, method in NORMS, f"one of {NORMS}")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    bad = ~np.isfinite(s)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        name = repr(str(ids[j])) if ids is not None else str(j)
        raise InputError(
            f"quality score of generated sample {name} is {s[j]}; scores must be finite. "
            "Fix the quality backend's input or score file."
        )
    if method == "raw" or len(s) == 0:
        return s
    if method == "minmax":
        lo, hi = s.min(), s.max()
        return np.ones_like(s) if hi == lo else (s - lo) / (hi - lo)
    if method == "rank":
        from scipy.stats import rankdata

        return np.asarray(rankdata(s, method="max"), dtype=np.float64) / len(s)
    hi = s.max()
    if hi <= 0:
        raise InputError(
            f"quality-norm 'divide-by-max' needs a positive best score; the best is {hi}. "
            "Use --quality-norm minmax or rank."
        )
    return s / hi
