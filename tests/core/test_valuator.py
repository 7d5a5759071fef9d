"""The value formula and the Valuator: oracles, invariants and error messages."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gmvaluator import InputError, ValuationResult, Valuator, softmax_credit


def test_softmax_credit_matches_hand_computed_example():
    # d = [0, 1, 2], T = 1: weights e^0, e^-1, e^-2 over their sum, times q = 0.5
    d = np.array([[0.0, 1.0, 2.0]])
    w = np.array([1.0, np.exp(-1), np.exp(-2)])
    expected = 0.5 * w / w.sum()  # 0.5 / 1.50321 = 0.33262, ...
    got = softmax_credit(d, 1.0, np.array([0.5]))
    np.testing.assert_allclose(got, expected[None, :], rtol=1e-12)
    np.testing.assert_allclose(got[0], [0.332620, 0.122364, 0.045015], atol=1e-6)


def test_the_package_exports_the_one_credit_rule():
    import gmvaluator
    from gmvaluator.core import credit

    assert gmvaluator.softmax_credit is credit.softmax_credit
    assert gmvaluator.CreditRule is credit.CreditRule


def test_softmax_credit_temperature_sharpens():
    d = np.array([[0.1, 0.2, 0.4]])
    soft, sharp = softmax_credit(d, 10.0), softmax_credit(d, 0.01)
    assert soft[0].max() - soft[0].min() < 0.05
    assert sharp[0, 0] > 0.99


def test_softmax_credit_is_stable_for_distances_in_the_thousands():
    d = np.array([[5000.0, 5001.0, 5003.0], [1e6, 1e6, 1e6 + 1]])
    credit = softmax_credit(d)
    assert np.isfinite(credit).all()
    np.testing.assert_allclose(credit.sum(axis=1), 1.0)
    w = np.exp(-np.array([0.0, 1.0, 3.0]))
    np.testing.assert_allclose(credit[0], w / w.sum())
    np.testing.assert_allclose(credit[1, :2], 1 / (2 + np.exp(-1)))


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 8),
    st.floats(1e-3, 1e3),
    st.integers(0, 2**32 - 1),
    st.floats(0, 1e4),
)
def test_credit_rows_sum_to_quality_and_are_nonnegative(m, k, temperature, seed, scale):
    rng = np.random.default_rng(seed)
    d = np.sort(rng.random((m, k)) * scale, axis=1)
    q = rng.random(m) * 3
    credit = softmax_credit(d, temperature, q)
    assert (credit >= 0).all()
    np.testing.assert_allclose(credit.sum(axis=1), q, rtol=1e-9, atol=1e-12)
    # quality never changes the order of contributors within one generated sample
    unweighted = softmax_credit(d, temperature)
    assert (np.argsort(-credit, kind="stable") == np.argsort(-unweighted, kind="stable"))[
        q > 0
    ].all()


def _result(x, g, **kw) -> ValuationResult:
    return Valuator(**kw).fit(x).value(g)


def test_exact_copy_of_training_item_ranks_it_first(digits_pixels):
    x, _ = digits_pixels
    rows = np.array([3, 141, 592, 1653])
    for index in ("exact", "pq", "ivfpq"):
        r = _result(x, x[rows], k=5, index=index)
        np.testing.assert_array_equal(r.indices[:, 0], rows)
        np.testing.assert_allclose(r.distances[:, 0], 0.0, atol=1e-6)


def test_values_equal_summed_credit_and_each_sample_hands_out_q(digits_pixels):
    x, _ = digits_pixels
    rng = np.random.default_rng(0)
    g = x[rng.choice(len(x), 40)] + rng.normal(0, 0.05, (40, x.shape[1])).astype(np.float32)
    q = rng.random(40)
    r = Valuator(k=7, index="exact").fit(x).value(g, quality=q)
    np.testing.assert_allclose(r.credits.sum(axis=1), q)
    np.testing.assert_allclose(r.values.sum(), q.sum())
    dense = np.zeros(len(x))
    np.add.at(dense, r.indices.ravel(), r.credits.ravel())
    np.testing.assert_allclose(r.values, dense)
    assert r.n_matched == len(np.unique(r.indices))
    assert (r.n_matches.sum()) == 40 * 7


def test_uniform_quality_equals_unweighted(digits_pixels):
    x, _ = digits_pixels
    g = x[:30] * 0.9 + x[30:60] * 0.1
    v = Valuator(k=5, index="exact").fit(x)
    np.testing.assert_allclose(v.value(g, quality=np.full(30, 2.0)).values, 2 * v.value(g).values)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_permuting_the_training_set_permutes_the_values(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    g = rng.normal(size=(12, 8)).astype(np.float32)
    perm = rng.permutation(60)
    ids = [f"t{i}" for i in range(60)]
    base = Valuator(k=4, index="exact").fit(x, ids=ids).value(g)
    permuted = Valuator(k=4, index="exact").fit(x[perm], ids=np.array(ids)[perm]).value(g)
    np.testing.assert_allclose(permuted.values, base.values[perm], atol=1e-12)
    np.testing.assert_array_equal(permuted.train_ids, base.train_ids[perm])


def test_value_does_not_change_the_valuator(digits_pixels):
    x, _ = digits_pixels
    v = Valuator(k=5, index="pq").fit(x)
    before = (v.get_params(), v.index_params_, v.faiss_index_.ntotal)
    a = v.value(x[:20])
    v.value(x[100:400])
    b = v.value(x[:20])
    assert (v.get_params(), v.index_params_, v.faiss_index_.ntotal) == before
    np.testing.assert_array_equal(a.values, b.values)


def test_sqeuclidean_metric_uses_raw_distances(digits_pixels):
    x, _ = digits_pixels
    r = Valuator(k=3, index="exact", metric="sqeuclidean").fit(x).value(x[:5] + 0.1)
    expected = ((x[r.indices[0]] - (x[0] + 0.1)) ** 2).sum(axis=1)
    np.testing.assert_allclose(r.distances[0], expected, rtol=1e-5)


def test_save_and_load_round_trip(tmp_path, digits_pixels):
    x, _ = digits_pixels
    ids = [f"d{i}" for i in range(len(x))]
    v = Valuator(k=6, index="ivfpq").fit(x, ids=ids)
    r = v.value(x[::50] + 0.01, quality=np.linspace(0, 1, len(x[::50])))
    v2 = Valuator.load(v.save(tmp_path / "index"))
    r2 = v2.value(x[::50] + 0.01, quality=np.linspace(0, 1, len(x[::50])))
    assert v2.get_params() == v.get_params() and v2.index_params_ == v.index_params_
    np.testing.assert_array_equal(r2.values, r.values)
    r3 = ValuationResult.load(r.save(tmp_path / "result"))
    for name in ("values", "n_matches", "distances", "indices", "credits", "quality"):
        np.testing.assert_array_equal(getattr(r3, name), getattr(r, name))
    np.testing.assert_array_equal(r3.train_ids, r.train_ids)
    np.testing.assert_array_equal(r3.generated_ids, r.generated_ids)
    assert r3.config == r.config and r3.recall == r.recall


def test_load_refuses_tampered_embeddings(tmp_path, digits_pixels):
    x, _ = digits_pixels
    folder = Valuator(k=3, index="exact").fit(x[:100]).save(tmp_path / "ix")
    np.save(folder / "embeddings.npy", np.zeros((100, 64), np.float32))
    with pytest.raises(InputError, match="does not match index.json"):
        Valuator.load(folder)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, r"The 'k' parameter of Valuator must be an int in the range \[1, inf\). Got 0"),
        ({"temperature": -1.0}, r"The 'temperature' parameter of Valuator must be 'auto' or a"),
        ({"index": "hnsw"}, r"The 'index' parameter of Valuator must be one of"),
        ({"metric": "l1"}, r"The 'metric' parameter of Valuator must be one of"),
    ],
)
def test_bad_parameters_get_one_sentence(kwargs, message):
    with pytest.raises(InputError, match=message):
        Valuator(**kwargs).fit(np.eye(4, dtype=np.float32))


def test_input_errors_name_the_item():
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    with pytest.raises(InputError, match=r"k=30 is larger than the training set \(20 items\)"):
        Valuator(k=30).fit(x)
    v = Valuator(k=3).fit(x)
    with pytest.raises(InputError, match="generated embeddings have 5 dimensions but the training"):
        v.value(np.ones((2, 5), np.float32))
    bad = x[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(InputError, match="generated embeddings row 1 has NaN"):
        v.value(bad)
    with pytest.raises(InputError, match="training embeddings row 2 is all zeros"):
        Valuator(k=1).fit(np.array([[1, 0], [0, 1], [0, 0]], np.float32))
    with pytest.raises(InputError, match="quality of generated sample '1' is -1.0"):
        v.value(x[:3], quality=[1.0, -1.0, 0.5])
    with pytest.raises(InputError, match="not fitted yet"):
        Valuator().value(x)
