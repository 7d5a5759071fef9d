"""The criteria as plain functions over arrays and valuation results.

Each takes what one repeat produced (a result, labels, values, losses) and returns numbers; the
experiments in ``gmvaluator.evaluate.experiments`` repeat them over seeds and draws and turn the
repeats into ``Estimate``s.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gmvaluator.core.credit import CreditRule
from gmvaluator.core.result import ValuationResult
from gmvaluator.errors import InputError
from gmvaluator.evaluate import stats


def identical_class_share(
    result: ValuationResult,
    train_labels: np.ndarray,
    generated_labels: np.ndarray,
    k: int | None = None,
) -> np.ndarray:
    """C1: per generated sample, the share of its top-k contributors that have its class."""
    k = result.k if k is None else k
    if not 1 <= k <= result.k:
        raise InputError(
            f"k={k} must be in [1, {result.k}], the k the result was made with.", param="k"
        )
    train_labels = np.asarray(train_labels)
    generated_labels = np.asarray(generated_labels)
    if len(train_labels) != len(result.train_ids) or len(generated_labels) != len(
        result.generated_ids
    ):
        raise InputError("labels must give one label per training item and per generated sample.")
    return identical_share(result.indices, train_labels, generated_labels, k)


def identical_share(
    indices: np.ndarray, train_attr: np.ndarray, generated_attr: np.ndarray, k: int
) -> np.ndarray:
    """Per generated sample, the share of its first k matches whose attribute equals its own.

    C1 when the attribute is the class; C2 for any other column (a grouping, a CelebA flag).
    """
    idx = np.asarray(indices)
    if idx.ndim != 2 or not 1 <= k <= idx.shape[1]:
        raise InputError(f"k={k} must be in [1, {idx.shape[1]}], the matches per generated sample.")
    train_attr = np.asarray(train_attr)
    generated_attr = np.asarray(generated_attr)
    if len(generated_attr) != len(idx):
        raise InputError(
            f"{len(generated_attr)} generated attributes for {len(idx)} generated samples; "
            "give one per generated sample."
        )
    if idx.size and idx.max() >= len(train_attr):
        raise InputError(
            f"matches point at training row {idx.max()} but only {len(train_attr)} training "
            "attributes were given; give one per training item."
        )
    return (train_attr[idx[:, :k]] == generated_attr[:, None]).mean(axis=1)


def share_at_ks(
    indices: np.ndarray, train_attr: np.ndarray, generated_attr: np.ndarray, ks: Any
) -> dict[int, float]:
    """Mean identical share at each k in ``ks`` (one repeat of C1 or C2)."""
    return {
        int(k): float(identical_share(indices, train_attr, generated_attr, int(k)).mean())
        for k in ks
    }


def group_labels(labels: np.ndarray, groups: dict[str, Any]) -> np.ndarray:
    """Map class labels to group names (e.g. Fashion-MNIST footwear / tops / bags) for C2."""
    labels = np.asarray(labels)
    lookup: dict[int, str] = {}
    for name, members in groups.items():
        for c in members:
            if int(c) in lookup:
                raise InputError(f"class {c} is in groups {lookup[int(c)]!r} and {name!r}.")
            lookup[int(c)] = name
    missing = sorted(set(np.unique(labels).tolist()) - set(lookup))
    if missing:
        raise InputError(f"classes {missing} belong to no group; add them to a group.")
    return np.array([lookup[int(c)] for c in labels])


def ood_scores(values: np.ndarray, injected: np.ndarray) -> dict[str, float]:
    """C3: how well a low score singles out injected items: AUROC, AUPRC, precision@n_injected.

    ``values`` is what the run ranks by (``ValuationResult.rank_scores``: the value under the
    paper's rule, its blend with the generated-sample density under the calibrated one)."""
    v = np.asarray(values, dtype=np.float64)
    inj = np.asarray(injected, dtype=bool)
    return {
        "auroc": stats.auroc(-v, inj),
        "auprc": stats.auprc(-v, inj),
        "precision_at_n": stats.precision_at(-v, inj),
        "base_rate": float(inj.mean()),
    }


def membership_scores(values: np.ndarray, member: np.ndarray) -> dict[str, float]:
    """Members should be worth more than non-members: AUROC and one-sided Mann–Whitney p."""
    v = np.asarray(values, dtype=np.float64)
    mem = np.asarray(member, dtype=bool)
    _, p = stats.mann_whitney(v[mem], v[~mem])
    return {
        "auroc": stats.auroc(v, mem),
        "p_value": p,
        "member_mean": float(v[mem].mean()),
        "nonmember_mean": float(v[~mem].mean()),
    }


def values_at_k(result: ValuationResult, k: int) -> np.ndarray:
    """Values phi_i had the result kept only the first ``k`` of each generated sample's matches.

    The first k of a top-K list are the top-k list, so this equals valuing again with k (for
    the recall index's own lists too); the credit is the result's own rule over those k
    distances, scaled by its quality and attributable share.
    """
    if not 1 <= k <= result.k:
        raise InputError(
            f"k={k} must be in [1, {result.k}], the k the result was made with.", param="k"
        )
    rule = CreditRule.from_description(result.config.get("credit") or {"credit": "paper",
                                       "temperature": 1.0})  # fmt: skip
    n = len(result.train_ids)
    dist, rows = result.distances[:, :k], result.indices[:, :k]
    return rule.assign(dist, rows, n, result.quality, result.share).values


def attribution_matrix(result: ValuationResult, signed: bool = True) -> np.ndarray:
    """The dense (m, n) matrix of attributions tau_j(i) of a result: the credits V(x_i, g_j),
    or, for a model-aware result with ``signed``, its signed scores (unscored matches 0)."""
    m = len(result.generated_ids)
    tau = np.zeros((m, len(result.train_ids)), dtype=np.float64)
    cells = result.credits if result.scores is None or not signed else result.scores
    np.add.at(
        tau,
        (np.repeat(np.arange(m), result.k), result.indices.ravel()),
        np.nan_to_num(np.asarray(cells, dtype=np.float64), nan=0.0).ravel(),
    )
    return tau


def lds(attributions: np.ndarray, subsets: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Linear datamodeling score per generated sample.

    ``attributions`` (m, n) credits tau_j(i); ``subsets`` (R, n) boolean masks of the training
    items each retrained model saw; ``outputs`` (R, m) each model's output on each generated
    sample, higher meaning better explained (use minus the loss). Returns the Spearman
    correlation, over the R models, between the output and the summed attribution of the subset,
    one per generated sample (NaN where either side is constant).
    """
    from scipy.stats import rankdata

    tau = np.asarray(attributions, dtype=np.float64)
    s = np.asarray(subsets, dtype=bool)
    f = np.asarray(outputs, dtype=np.float64)
    if s.shape[1] != tau.shape[1] or f.shape != (len(s), len(tau)):
        raise InputError(
            f"lds: attributions {tau.shape}, subsets {s.shape} and outputs {f.shape} disagree; "
            "expect (m, n), (R, n) and (R, m)."
        )
    sizes = s.sum(axis=1)
    if len(np.unique(sizes)) > 1:
        raise InputError(
            f"lds: subsets have sizes {sorted(set(sizes.tolist()))}; they must all have the "
            "same size, or models trained on more data score well even for random attributions."
        )
    pred = s.astype(np.float64) @ tau.T  # (R, m)
    rp = rankdata(pred, axis=0)
    rf = rankdata(f, axis=0)
    rp -= rp.mean(0)
    rf -= rf.mean(0)
    denom = np.sqrt((rp**2).sum(0) * (rf**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (rp * rf).sum(0) / np.where(denom > 0, denom, 1.0), np.nan)


def split_by_value(values: np.ndarray, fraction: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Row sets for deletion and insertion: the top, bottom and a random ``fraction`` of items.

    Ties are broken at random (many items hold value 0), seeded.
    """
    v = np.asarray(values, dtype=np.float64)
    if not 0 < fraction < 1:
        raise InputError(f"fraction must be in (0, 1); got {fraction}.")
    n_pick = max(1, round(fraction * len(v)))
    rng = np.random.default_rng(seed)
    jitter = rng.random(len(v))
    order = np.lexsort((jitter, -v))  # descending value, random among ties
    return {
        "top": np.sort(order[:n_pick]),
        "bottom": np.sort(order[-n_pick:]),
        "random": np.sort(rng.choice(len(v), n_pick, replace=False)),
    }
