"""Statistics shared by the criteria: the uniform estimate shape, ranking scores, FID.

Every criterion reports an ``Estimate``: the mean over repeats (seeds of the generator times
draws of the generated set) with a 95 % interval, plus the repeats themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gmvaluator.errors import InputError


@dataclass(frozen=True)
class Estimate:
    """A mean with a 95 % interval and the samples behind it.

    ``method`` says how the interval was made: ``"t"`` (Student t over repeats), ``"bootstrap"``
    (percentile bootstrap) or ``"single"`` (one repeat: no interval, lo = hi = mean).
    """

    mean: float
    lo: float
    hi: float
    n: int
    method: str
    samples: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "ci95": [self.lo, self.hi],
            "n": self.n,
            "interval": self.method,
            "samples": list(self.samples),
        }


def estimate(samples: Any) -> Estimate:
    """Mean and 95 % Student-t interval of independent repeats (one number per repeat)."""
    x = _finite_1d(samples, "estimate")
    mean = float(x.mean())
    if len(x) == 1:
        return Estimate(mean, mean, mean, 1, "single", (mean,))
    from scipy import stats

    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return Estimate(mean, mean - half, mean + half, len(x), "t", tuple(map(float, x)))


def bootstrap(
    samples: Any, n_boot: int = 2000, seed: int = 0, statistic: Any = np.mean
) -> Estimate:
    """Statistic of ``samples`` with a 95 % percentile-bootstrap interval over its elements.

    ``scipy.stats.bootstrap`` draws the resamples from ``numpy.random.default_rng(seed)`` and
    takes the 2.5th and 97.5th percentiles of the statistic over them.
    """
    from scipy import stats

    x = _finite_1d(samples, "bootstrap")
    point = float(statistic(x))
    if len(x) == 1:  # every resample is the one element: no spread (scipy refuses n = 1)
        return Estimate(point, point, point, 1, "bootstrap", ())
    res = stats.bootstrap(
        (x,),
        statistic,
        n_resamples=n_boot,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    lo, hi = res.confidence_interval
    return Estimate(point, float(lo), float(hi), len(x), "bootstrap", ())


def _finite_1d(samples: Any, owner: str) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if len(x) == 0:
        raise InputError(f"{owner}: no samples to summarise; run at least one repeat.")
    if not np.isfinite(x).all():
        raise InputError(f"{owner}: samples contain NaN or infinity; check the criterion inputs.")
    return x


def _check_binary(scores: Any, positive: Any, owner: str) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(positive, dtype=bool).reshape(-1)
    if s.shape != y.shape:
        raise InputError(f"{owner}: {len(s)} scores for {len(y)} labels; give one score per item.")
    if y.all() or not y.any():
        raise InputError(f"{owner}: needs both positive and negative items; got only one kind.")
    return s, y


def auroc(scores: Any, positive: Any) -> float:
    """Area under the ROC curve of ``scores`` for ``positive`` (ties count one half)."""
    from sklearn.metrics import roc_auc_score

    s, y = _check_binary(scores, positive, "auroc")
    return float(roc_auc_score(y, s))


def auprc(scores: Any, positive: Any) -> float:
    """Average precision of ``scores`` for ``positive``; tied scores share their precision."""
    from sklearn.metrics import average_precision_score

    s, y = _check_binary(scores, positive, "auprc")
    return float(average_precision_score(y, s))


def precision_at(scores: Any, positive: Any, n: int | None = None) -> float:
    """Share of positives among the ``n`` highest scores (default: the number of positives).

    Ties at the cut are shared out in proportion, so the result never depends on row order.
    scikit-learn has no such measure: ``precision_score`` of a top-n cut made by sorting, or
    ``top_k_accuracy_score``, let row order decide the ties (with every score tied, 50
    positives among 1,000 items gave 1.0 or 0.0 by order; this gives 0.05).
    """
    s, y = _check_binary(scores, positive, "precision_at")
    n = int(y.sum()) if n is None else int(n)
    if not 1 <= n <= len(s):
        raise InputError(f"precision_at: n={n} must be in [1, {len(s)}].")
    cut = np.sort(s)[::-1][n - 1]
    above = s > cut
    tied = s == cut
    take = n - int(above.sum())
    return float((y[above].sum() + take * y[tied].mean()) / n)


def mann_whitney(higher: Any, lower: Any) -> tuple[float, float]:
    """One-sided Mann–Whitney U test that ``higher`` tends to exceed ``lower``: (U, p)."""
    from scipy.stats import mannwhitneyu

    a = _finite_1d(higher, "mann_whitney")
    b = _finite_1d(lower, "mann_whitney")
    res = mannwhitneyu(a, b, alternative="greater")
    return float(res.statistic), float(res.pvalue)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance of Gaussians fitted to two feature sets (FID in that feature space)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise InputError(
            f"frechet_distance needs two (n, d) feature sets with n >= 2 and one d; got "
            f"{x.shape} and {y.shape}."
        )
    mu = x.mean(0) - y.mean(0)
    ca, cb = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    # tr sqrt(ca cb) = sum of sqrt eigenvalues of ca^1/2 cb ca^1/2, a symmetric PSD matrix: this
    # stays exact when pixels are constant (singular covariances), where sqrtm(ca @ cb) fails.
    w, v = np.linalg.eigh(ca)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root @ cb @ root)
    tr_covmean = float(np.sqrt(np.clip(inner, 0, None)).sum())
    return float(mu @ mu + np.trace(ca) + np.trace(cb) - 2 * tr_covmean)
