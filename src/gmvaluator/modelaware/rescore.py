"""The model-aware re-score of each generated sample's shortlist.

For generated sample g_j with shortlist L_j (its K' nearest training items in the run's index,
restricted to items of its own label when both sides carry labels, ``by_label``):

    score(x_i, g_j) = psi_j^T (Phi_S^T Phi_S * n / |S| + lambda I)^-1 phi_i     for i in L_j

with phi_i the projected gradient of the model's loss on training item x_i (averaged over
``draws`` noise draws), psi_j that of its output function on g_j (``output_draws`` draws), S a
uniform sample of at most ``kernel_sample`` training items (all of them when n is smaller), and
lambda = ``ridge`` x the mean eigenvalue of the kernel. Items outside the shortlist score 0.
With several models (checkpoints) the scores are averaged (TRAK's ensemble).

A positive score says the item lowered the model's loss on (raised its output for) the sample.
Scores become credit by

    V(x_i, g_j) = q_j a_j max(score_ij, 0) / sum_{l in L_j} max(score_lj, 0)

so each generated sample hands out q_j a_j as under the calibrated rule (a_j, its attributable
share, comes from the training-free match), split among the shortlisted items that helped it;
a sample none of whose candidates helped hands out nothing. The signed scores are kept beside
the credits (``ValuationResult.scores``): they are the attribution the evaluation measures.

Gradients are computed only for the shortlisted items and the kernel sample.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator.config import ValueConfig
from gmvaluator.core.result import ValuationResult
from gmvaluator.errors import InputError, check_param
from gmvaluator.modelaware.features import FeatureSettings, GradientFeaturizer, featurize
from gmvaluator.modelaware.model import LOSS, GradientModel
from gmvaluator.sources.base import Dataset

METHOD = "model-aware"
_DEFAULTS = ValueConfig()


@dataclass(frozen=True)
class RescoreSettings:
    """The re-score's parameters. Those a run sets take their defaults from ``ValueConfig``,
    the one declaration of them (chosen on the digits, see docs/EVALUATION.md)."""

    candidates: int = _DEFAULTS.shortlist
    by_label: bool | None = None
    ridge: float = _DEFAULTS.ridge
    kernel_sample: int = 4096
    output: str = _DEFAULTS.model_output
    #: the function differentiated on the training items (D-TRAK: not always the loss)
    train_output: str = LOSS
    draws: int = _DEFAULTS.draws
    output_draws: int = _DEFAULTS.output_draws
    dim: int = _DEFAULTS.gradient_dim
    projection: str = "sparse"
    seed: int = 0
    batch_size: int = 32

    def __post_init__(self) -> None:
        owner = "RescoreSettings"
        for name in ("candidates", "kernel_sample", "draws", "output_draws", "dim", "batch_size"):
            v = getattr(self, name)
            ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool) and bool(v >= 1)
            check_param(owner, name, v, ok, "an int >= 1")
        ok = (
            isinstance(self.ridge, (int, float))
            and bool(np.isfinite(self.ridge))
            and self.ridge > 0
        )
        check_param(owner, "ridge", self.ridge, ok, "a float > 0")
        self.features(False)  # checks projection and seed

    def features(self, generated: bool) -> FeatureSettings:
        draws = self.output_draws if generated else self.draws
        return FeatureSettings(self.dim, draws, self.projection, self.seed, self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shortlists(
    valuator: Any,
    generated_embeddings: np.ndarray,
    train_labels: np.ndarray | None,
    generated_labels: np.ndarray | None,
    settings: RescoreSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(distances, rows, scored, by_label): each generated sample's K' candidates from the run's
    index, nearest first; with labels, those of its own label first and ``scored`` False for
    the others (they fill the shortlist and get no credit)."""
    n = int(valuator.n_train_)
    kp = min(settings.candidates, n)
    labelled = train_labels is not None and generated_labels is not None
    by_label = labelled if settings.by_label is None else bool(settings.by_label)
    if by_label and not labelled:
        raise InputError(
            "by_label needs labels on both the training items and the generated samples; give "
            "them, or turn it off.",
            param="by_label",
        )
    if not by_label:
        d, rows = valuator.candidates(generated_embeddings, kp)
        return d, rows, rows >= 0, False
    train_l = np.asarray(train_labels).astype(str)
    gen_l = np.asarray(generated_labels).astype(str)
    wide = min(n, kp * max(1, len(np.unique(train_l))))
    d, rows = valuator.candidates(generated_embeddings, wide)
    same = (rows >= 0) & (train_l[np.maximum(rows, 0)] == gen_l[:, None])
    order = np.argsort(~same, axis=1, kind="stable")[:, :kp]  # own label first, nearest first
    return (np.take_along_axis(d, order, 1), np.take_along_axis(rows, order, 1),
            np.take_along_axis(same, order, 1), True)  # fmt: skip


def kernel_rows(n: int, settings: RescoreSettings) -> np.ndarray:
    """The training rows whose features estimate Phi^T Phi: all, or a seeded uniform sample."""
    if n <= settings.kernel_sample:
        return np.arange(n)
    rng = np.random.default_rng(settings.seed)
    return np.sort(rng.choice(n, settings.kernel_sample, replace=False))


def trak_scores(
    phi: np.ndarray, psi: np.ndarray, kernel: np.ndarray, n_train: int, ridge: float
) -> tuple[np.ndarray, float]:
    """(A, lambda): A = (K + lambda I)^-1 psi^T with K = Phi_S^T Phi_S n / |S|, so that
    score(i, j) = phi_i . A[:, j]."""
    ks = np.asarray(kernel, dtype=np.float64)
    k = ks.T @ ks * (n_train / len(ks))
    lam = float(ridge * np.trace(k) / len(k))
    if not lam > 0:
        raise InputError(
            "every gradient feature is zero: the model's loss does not depend on its parameters "
            "on these items; check the model file's loss."
        )
    a = np.linalg.solve(k + lam * np.eye(len(k)), np.asarray(psi, dtype=np.float64).T)
    return a, lam


def rescore(
    valuator: Any,
    base: ValuationResult,
    generated_embeddings: np.ndarray,
    models: Sequence[GradientModel],
    train: Dataset,
    generated: Dataset,
    settings: RescoreSettings,
    store: str | Path,
    *,
    progress: bool = False,
    describe: dict[str, Any] | None = None,
) -> ValuationResult:
    """``base`` (the training-free result of the same run) with its matches and credits
    replaced by the model-aware re-score of each generated sample's shortlist."""
    if not models:
        raise InputError("the model-aware re-score needs at least one model.", param="model")
    if len(train) != valuator.n_train_ or len(generated) != len(base.generated_ids):
        raise InputError(
            f"the re-score got {len(train)} training items and {len(generated)} generated "
            f"samples, but the run valued {valuator.n_train_} and {len(base.generated_ids)}."
        )
    t0 = time.perf_counter()
    dist, rows, scored, by_label = shortlists(
        valuator, generated_embeddings, train.labels, generated.labels, settings
    )
    n = len(train)
    k_rows = kernel_rows(n, settings)
    need = np.union1d(np.unique(rows[scored]), k_rows)
    t_short = time.perf_counter() - t0
    total = np.zeros(rows.shape)
    lambdas = []
    for number, model in enumerate(models):
        tag = f" ({number + 1}/{len(models)})" if len(models) > 1 else ""
        f_train = GradientFeaturizer(model, settings.features(False), settings.train_output)
        f_gen = GradientFeaturizer(model, settings.features(True), settings.output)
        phi = featurize(f_train, train, need, store, progress=progress, label=f"training{tag}")
        psi = featurize(f_gen, generated, np.arange(len(generated)), store, progress=progress,
                        label=f"generated{tag}")  # fmt: skip
        at = np.searchsorted(need, np.maximum(rows, 0))
        a, lam = trak_scores(phi, psi, phi[np.searchsorted(need, k_rows)], n, settings.ridge)
        lambdas.append(lam)
        by_item = phi.astype(np.float64) @ a  # (items, m): never an (m, K', d) array
        total += by_item[at, np.arange(len(at))[:, None]]
    scores = np.where(scored, total / len(models), np.nan)
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), axis=1, kind="stable")
    scores, rows, dist = (np.take_along_axis(x, order, 1) for x in (scores, rows, dist))
    credits = credit_from_scores(scores, base.quality, base.share)
    values = np.zeros(n)
    np.add.at(values, rows.ravel(), credits.ravel())
    matches = np.zeros(n, dtype=np.int64)
    np.add.at(matches, rows.ravel(), (credits > 0).ravel().astype(np.int64))
    info = {
        "method": METHOD,
        **settings.to_dict(),
        "by_label": by_label,
        "models": len(models),
        "lambda": lambdas,
        "gradient_items": len(need),
        "kernel_items": len(k_rows),
        "n_params": int(f_train.n_params),
        "per_example_gradients": "torch.func.vmap" if f_train._vmap_ok else "loop",
        **(describe or {}),
    }
    timings = {**base.timings, "rescore_s": time.perf_counter() - t0, "shortlist_s": t_short}
    return replace(
        base,
        values=values,
        n_matches=matches,
        distances=dist,
        indices=rows,
        credits=credits,
        near_copy=None,
        scores=scores,
        config={**base.config, "model_aware": info},
        timings=timings,
    ).with_density()


def credit_from_scores(
    scores: np.ndarray, quality: np.ndarray, share: np.ndarray | None
) -> np.ndarray:
    """q_j a_j max(score, 0), normalised per generated sample (NaN scores: no credit)."""
    pos = np.maximum(np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0), 0.0)
    sums = pos.sum(axis=1, keepdims=True)
    w = np.divide(pos, sums, out=np.zeros_like(pos), where=sums > 0)
    a = np.ones(len(pos)) if share is None else np.asarray(share, dtype=np.float64)
    return w * (np.asarray(quality, dtype=np.float64) * a)[:, None]
