"""The ranking scores and intervals of the harness against scikit-learn and SciPy on small
cases whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sp
from sklearn.metrics import average_precision_score, roc_auc_score

from gmvaluator.errors import InputError
from gmvaluator.evaluate.stats import auprc, auroc, bootstrap, precision_at

# scikit-learn's own documented example: AUROC 0.75, average precision 0.8333
SCORES = np.array([0.1, 0.4, 0.35, 0.8])
LABELS = np.array([False, False, True, True])


def test_ranking_scores_of_a_known_case():
    assert auroc(SCORES, LABELS) == 0.75 == roc_auc_score(LABELS, SCORES)
    assert auprc(SCORES, LABELS) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert auprc(SCORES, LABELS) == average_precision_score(LABELS, SCORES)
    # the top two scores are one positive and one negative
    assert precision_at(SCORES, LABELS) == 0.5
    assert precision_at(SCORES, LABELS, n=1) == 1.0


def test_ties_count_one_half_and_share_their_precision():
    s = np.array([3.0, 2.0, 2.0, 2.0, 1.0])
    y = np.array([True, True, False, False, True])
    # pairs (pos, neg): 3>2, 3>2, (2,2) tie twice, 1<2 twice -> (2 + 2 * 0.5) / 6
    assert auroc(s, y) == pytest.approx(3 / 6)
    # precision 1 at score 3, then 2/4 after the tied run, then 3/5
    assert auprc(s, y) == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 4 + 1 / 3 * 3 / 5)
    # n = 2: the top item and one of three tied items, one third of which are positive
    assert precision_at(s, y, n=2) == pytest.approx((1 + 1 / 3) / 2)
    for order in (np.arange(5), np.arange(5)[::-1]):
        assert precision_at(s[order], y[order], n=2) == pytest.approx(2 / 3)


def test_ranking_scores_refuse_one_sided_or_mismatched_labels():
    with pytest.raises(InputError, match="auroc: needs both positive and negative"):
        auroc(SCORES, np.ones(4, bool))
    with pytest.raises(InputError, match="auprc: 4 scores for 3 labels"):
        auprc(SCORES, LABELS[:3])
    with pytest.raises(InputError, match=r"precision_at: n=5 must be in \[1, 4\]"):
        precision_at(SCORES, LABELS, n=5)


def test_bootstrap_is_scipys_percentile_interval_with_the_same_seed():
    x = np.random.default_rng(3).normal(1.0, 0.5, 40)
    b = bootstrap(x, n_boot=500, seed=7)
    ref = sp.bootstrap((x,), np.mean, n_resamples=500, method="percentile",
                       rng=np.random.default_rng(7))  # fmt: skip
    assert (b.lo, b.hi) == (ref.confidence_interval.low, ref.confidence_interval.high)
    assert b.mean == x.mean() and b.n == 40 and b.method == "bootstrap"
    # the interval is the 2.5th and 97.5th percentile of the mean over resamples drawn with
    # numpy's generator from that seed
    draws = np.random.default_rng(7).integers(0, len(x), size=(500, len(x)))
    want = np.percentile(x[draws].mean(axis=1), [2.5, 97.5])
    np.testing.assert_allclose([b.lo, b.hi], want, rtol=1e-12)
    median = bootstrap(x, n_boot=500, seed=7, statistic=np.median)
    assert median.mean == np.median(x) and median.lo < median.mean < median.hi


def test_bootstrap_of_one_or_equal_samples_has_no_spread():
    one = bootstrap([0.4])
    assert (one.mean, one.lo, one.hi, one.n) == (0.4, 0.4, 0.4, 1)
    same = bootstrap([0.25] * 10)
    assert (same.lo, same.hi) == (0.25, 0.25)
    with pytest.raises(InputError, match="bootstrap: samples contain NaN"):
        bootstrap([1.0, np.inf])
