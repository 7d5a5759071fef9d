"""Monotonicity of the GMValuator value, as property tests of the credit rule.

phi_i = sum_j V(x_i, g_j) with V the softmax credit over each generated sample's top-k matches.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gmvaluator.core.credit import CreditRule
from gmvaluator.core.valuator import Valuator

distances = arrays(
    np.float64,
    st.tuples(st.integers(1, 6), st.integers(2, 8)),
    elements=st.floats(0.0, 50.0, allow_nan=False),
)


def _phi(rows: np.ndarray, d: np.ndarray, temperature: float, n: int) -> np.ndarray:
    return CreditRule(temperature).assign(d, rows, n).values


@settings(max_examples=150, deadline=None)
@given(
    d=distances,
    data=st.data(),
    temperature=st.sampled_from([0.05, 1.0, 10.0]),
)
def test_lowering_one_distance_never_lowers_that_items_value(d, data, temperature):
    m, k = d.shape
    n = k + 3
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    rows = np.stack([rng.choice(n, k, replace=False) for _ in range(m)])
    j = data.draw(st.integers(0, m - 1))
    col = data.draw(st.integers(0, k - 1))
    lower = data.draw(st.floats(0.0, 1.0)) * d[j, col]
    d2 = d.copy()
    d2[j, col] = lower
    i = rows[j, col]
    before = _phi(rows, d, temperature, n)[i]
    after = _phi(rows, d2, temperature, n)[i]
    assert after >= before - 1e-12


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.integers(1, 5), m=st.integers(1, 6))
def test_adding_a_generated_sample_never_lowers_anyones_value(seed, k, m):
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(20, 4)).astype(np.float32)
    gen = rng.normal(size=(m + 1, 4)).astype(np.float32)
    valuator = Valuator(k=k, index="exact").fit(train)
    before = valuator.value(gen[:m]).values
    after = valuator.value(gen).values
    assert (after >= before - 1e-9).all()
    # each sample hands out its attributable share (all of it under the paper's rule)
    res = valuator.value(gen)
    assert np.isclose(after.sum(), res.share.sum()) and (res.share <= 1).all()
    paper = Valuator(k=k, index="exact", credit="paper").fit(train).value(gen)
    assert np.isclose(paper.values.sum(), m + 1)
