"""Evaluation metrics over a valuation result (the paper's criteria)."""

from __future__ import annotations

import numpy as np

from gmvaluator.errors import InputError
from gmvaluator.result import ValuationResult


def identical_class_share(
    result: ValuationResult,
    train_labels: np.ndarray,
    generated_labels: np.ndarray,
    k: int | None = None,
) -> np.ndarray:
    """C1: per generated sample, the share of its top-k contributors that have its class."""
    k = result.k if k is None else k
    if not 1 <= k <= result.k:
        raise InputError(f"k={k} must be in [1, {result.k}], the k the result was made with.")
    train_labels = np.asarray(train_labels)
    generated_labels = np.asarray(generated_labels)
    if len(train_labels) != len(result.train_ids) or len(generated_labels) != len(
        result.generated_ids
    ):
        raise InputError("labels must give one label per training item and per generated sample.")
    matched = train_labels[result.indices[:, :k]]
    return (matched == generated_labels[:, None]).mean(axis=1)
