"""The metrics against oracles and chance: each would fail if the metric were broken."""

from __future__ import annotations

import numpy as np
import pytest

from gmvaluator.errors import InputError
from gmvaluator.evaluate import (
    auprc,
    auroc,
    bootstrap,
    estimate,
    group_labels,
    identical_share,
    lds,
    membership_scores,
    ood_scores,
    precision_at,
    share_at_ks,
    split_by_value,
)
from gmvaluator.evaluate.stats import frechet_distance

RNG = np.random.default_rng(0)


def test_identical_share_oracle_is_one_and_random_is_chance():
    train = np.repeat(np.arange(10), 100)
    gen = np.repeat(np.arange(10), 5)
    oracle = np.stack([np.flatnonzero(train == c)[:30] for c in gen])
    random = RNG.integers(0, len(train), size=(len(gen), 30))
    assert share_at_ks(oracle, train, gen, (10, 30)) == {10: 1.0, 30: 1.0}
    chance = share_at_ks(random, train, gen, (30,))[30]
    assert abs(chance - 0.1) < 0.04


def test_identical_share_counts_only_the_first_k():
    train = np.array([0, 1, 1])
    idx = np.array([[0, 1, 2]])
    assert identical_share(idx, train, np.array([0]), 1) == pytest.approx([1.0])
    assert identical_share(idx, train, np.array([0]), 3) == pytest.approx([1 / 3])
    with pytest.raises(InputError, match=r"k=4 must be in \[1, 3\]"):
        identical_share(idx, train, np.array([0]), 4)


def test_group_labels_maps_classes_and_names_missing_ones():
    assert group_labels(
        np.array([5, 0, 8]), {"shoes": (5,), "tops": (0,), "bags": (8,)}
    ).tolist() == [
        "shoes",
        "tops",
        "bags",
    ]
    with pytest.raises(InputError, match=r"classes \[8\] belong to no group"):
        group_labels(np.array([5, 8]), {"shoes": (5,)})


def test_ranking_scores_oracle_random_and_ties():
    y = np.r_[np.ones(50, bool), np.zeros(950, bool)]
    assert auroc(y.astype(float), y) == 1.0
    assert auprc(y.astype(float), y) == pytest.approx(1.0)
    assert precision_at(y.astype(float), y) == 1.0
    r = RNG.random(len(y))
    assert abs(auroc(r, y) - 0.5) < 0.1
    assert auprc(r, y) < 0.15
    # all scores tied: chance, whatever the row order
    flat = np.zeros(len(y))
    assert auroc(flat, y) == 0.5
    assert precision_at(flat, y) == pytest.approx(0.05)
    assert auprc(flat, y) == pytest.approx(0.05)
    with pytest.raises(InputError, match="both positive and negative"):
        auroc(r, np.ones(len(y), bool))


def test_auroc_matches_scikit_learn():
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = RNG.random(300) < 0.2
    s = np.round(RNG.random(300) + 0.3 * y, 1)  # rounding makes ties
    assert auroc(s, y) == pytest.approx(roc_auc_score(y, s))
    assert auprc(s, y) == pytest.approx(average_precision_score(y, s))


def test_c3_oracle_that_knows_the_injected_items_scores_one():
    injected = RNG.random(500) < 0.1
    values = np.where(injected, 0.0, 1.0 + RNG.random(500))
    scores = ood_scores(values, injected)
    assert scores["auroc"] == 1.0 and scores["precision_at_n"] == 1.0
    assert scores["auprc"] == pytest.approx(1.0)
    random = ood_scores(RNG.random(500), injected)
    assert abs(random["auroc"] - 0.5) < 0.12


def test_membership_oracle_and_random():
    member = np.r_[np.ones(200, bool), np.zeros(200, bool)]
    oracle = membership_scores(member + RNG.random(400) * 0.1, member)
    assert oracle["auroc"] == 1.0 and oracle["p_value"] < 1e-10
    random = membership_scores(RNG.random(400), member)
    assert abs(random["auroc"] - 0.5) < 0.1 and random["p_value"] > 0.001


def _planted_datamodel(n=60, m=40, r=48, noise=0.1):
    tau = RNG.random((m, n)) * (RNG.random((m, n)) < 0.2)
    subsets = np.zeros((r, n), bool)
    for i in range(r):
        subsets[i, RNG.choice(n, n // 2, replace=False)] = True
    outputs = (subsets @ tau.T) + noise * RNG.standard_normal((r, m))
    return tau, subsets, outputs


def test_lds_of_the_true_datamodel_is_high_and_of_random_attributions_near_zero():
    tau, subsets, outputs = _planted_datamodel()
    assert np.nanmean(lds(tau, subsets, outputs)) > 0.8
    random = lds(RNG.random(tau.shape), subsets, outputs)
    assert abs(np.nanmean(random)) < 0.1


def test_lds_refuses_halves_of_different_sizes():
    tau, subsets, outputs = _planted_datamodel()
    subsets[0, np.flatnonzero(~subsets[0])[0]] = True
    with pytest.raises(InputError, match="must all have the same size"):
        lds(tau, subsets, outputs)


def test_estimate_interval_and_bootstrap():
    e = estimate([0.5, 0.6, 0.7])
    assert e.mean == pytest.approx(0.6) and e.lo < 0.6 < e.hi and e.method == "t"
    assert estimate([0.3]).to_dict()["ci95"] == [0.3, 0.3]
    b = bootstrap(RNG.normal(1.0, 0.1, 400))
    assert b.lo < 1.0 < b.hi and b.hi - b.lo < 0.05
    with pytest.raises(InputError, match="NaN or infinity"):
        estimate([1.0, np.nan])


def test_split_by_value_sets():
    values = np.r_[np.arange(20.0), np.zeros(80)]
    sets = split_by_value(values, 0.1, seed=1)
    assert set(sets["top"]) == set(range(10, 20))
    assert (values[sets["bottom"]] == 0).all()
    assert all(len(v) == 10 for v in sets.values())


def test_frechet_distance_is_zero_for_one_set_and_grows_with_shift():
    a = RNG.normal(size=(500, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + 2.0) == pytest.approx(16.0, rel=0.01)
