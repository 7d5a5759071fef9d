"""The density of generated samples around training items, its merge over batches and the rank."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gmvaluator.core import density as dn


def _nearest(train: np.ndarray, gen: np.ndarray, k: int) -> dn.GeneratedNeighbours:
    d = ((train[:, None, :] - gen[None, :, :]) ** 2).sum(-1)
    rows = np.broadcast_to(np.arange(len(gen)), d.shape)
    order = np.lexsort((rows, d), axis=-1)[:, :k]
    return dn.pad(np.take_along_axis(d, order, 1), order.astype(np.int64), k)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 10_000))
def test_merging_batches_equals_one_search_over_all(m1, m2, seed):
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(20, 3))
    gen = rng.normal(size=(m1 + m2, 3)).round(1)  # rounding makes ties
    k = 8
    whole = _nearest(train, gen, k)
    parts = dn.merge(_nearest(train, gen[:m1], k), _nearest(train, gen[m1:], k).shifted(m1))
    np.testing.assert_array_equal(parts.rows, whole.rows)
    np.testing.assert_array_equal(parts.distances, whole.distances)


def test_density_is_the_weighted_log_mean_kernel_and_stable_far_away():
    d = np.array([[0.0, 1.0, np.inf], [1000.0, 1001.0, np.inf]])
    rows = np.array([[0, 1, -1], [1, 0, -1]])
    w = np.array([1.0, 0.5])
    got = dn.density(dn.GeneratedNeighbours(d, rows), w, bandwidth=2.0)
    assert got[0] == np.log((1.0 + 0.5 * np.exp(-0.5)) / 3)
    # exp(-500) underflows nothing: computed in the log domain
    np.testing.assert_allclose(got[1], np.log((0.5 + np.exp(-0.5)) / 3) - 500.0)


def test_an_item_with_no_weighted_sample_near_it_ranks_last():
    d = np.array([[0.1, 0.2], [0.1, 0.2], [5.0, 6.0]])
    rows = np.array([[0, 1], [1, 0], [0, 1]])
    dens = dn.density(dn.GeneratedNeighbours(d, rows), np.array([1.0, 0.0]), 1.0)
    assert dens[0] > dens[1] > dens[2]
    dens0 = dn.density(dn.GeneratedNeighbours(d, rows), np.zeros(2), 1.0)
    assert (dens0 == dens0[0]).all() and np.isfinite(dens0).all()


def test_rank_orders_by_density_among_equal_values_and_lifts_valued_items():
    dens = np.array([-1.0, -2.0, -3.0, -1.2])
    values = np.array([0.0, 0.0, 0.0, 4.0])
    r = dn.ranks(dn.rank_score(values, dens))
    assert r.tolist() == [2, 3, 4, 1]
    # equal scores keep training order
    assert dn.ranks(np.zeros(3)).tolist() == [1, 2, 3]
