"""Evaluation harness: the paper's criteria C1–C4 and the checks the paper lacked.

- ``criteria``: the metrics as plain functions over arrays and results (C1/C2 identical share,
  C3 out-of-distribution scores, membership, LDS, deletion sets);
- ``stats``: the uniform ``Estimate`` (mean, 95 % interval, samples), AUROC, AUPRC, FID;
- ``valuers``: the pipeline under test and its baselines (random, exact NN, raw pixels, quality,
  re-rank, temperatures) and the sensitivity variants behind one ``value_images`` call;
- ``experiments``: the repeated runs over generator seeds and draws of the generated set.
"""

from gmvaluator.evaluate.criteria import (
    attribution_matrix,
    group_labels,
    identical_class_share,
    identical_share,
    lds,
    membership_scores,
    ood_scores,
    share_at_ks,
    split_by_value,
    values_at_k,
)
from gmvaluator.evaluate.stats import Estimate, auprc, auroc, bootstrap, estimate, precision_at
from gmvaluator.evaluate.valuers import ValuerSpec, baselines, sensitivity_variants, value_images

__all__ = [
    "Estimate",
    "ValuerSpec",
    "attribution_matrix",
    "auprc",
    "auroc",
    "baselines",
    "bootstrap",
    "estimate",
    "group_labels",
    "identical_class_share",
    "identical_share",
    "lds",
    "membership_scores",
    "ood_scores",
    "precision_at",
    "sensitivity_variants",
    "share_at_ks",
    "split_by_value",
    "value_images",
    "values_at_k",
]
