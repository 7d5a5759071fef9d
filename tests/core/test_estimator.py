"""The Valuator as a scikit-learn estimator: parameters, clone, repr, fitted attributes."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.exceptions
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from gmvaluator import CreditRule, InputError, NotFittedError, Valuator, ValueConfig

FITTED = (
    "embeddings_",
    "faiss_index_",
    "train_ids_",
    "n_train_",
    "index_params_",
    "embeddings_sha256_",
    "build_seconds_",
    "credit_rule_",
)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)


def test_defaults_are_the_settings_defaults():
    params = Valuator().get_params()
    assert params == ValueConfig().valuator_params()
    assert list(params) == list(Valuator.param_names())


def test_clone_round_trips_the_parameters_and_drops_the_fit(x):
    v = Valuator(k=5, index="exact", temperature=0.2, nprobe=3, random_state=7).fit(x)
    c = clone(v)
    assert c is not v and c.get_params() == v.get_params()
    assert c.get_params(deep=False) == v.get_params(deep=True)
    with pytest.raises(NotFittedError):
        c.embeddings_  # noqa: B018


def test_set_params_changes_them_and_refuses_unknown_names():
    v = Valuator()
    assert v.set_params(k=3, metric="sqeuclidean") is v
    assert (v.k, v.metric) == (3, "sqeuclidean")
    with pytest.raises(
        InputError, match=r"Invalid parameter 'kk' for estimator Valuator\. Valid parameters are"
    ) as err:
        v.set_params(kk=1)
    assert err.value.param == ("kk",)


def test_repr_shows_the_parameters_that_differ_from_their_defaults():
    assert repr(Valuator()) == "Valuator()"
    assert repr(Valuator(k=5)) == "Valuator(k=5)"
    v = Valuator(3, "exact", temperature=0.5, random_state=2)
    assert repr(v) == "Valuator(k=3, index='exact', temperature=0.5, random_state=2)"


def test_methods_and_attributes_before_fit_raise_not_fitted(x):
    v = Valuator(k=3)
    for call in (lambda: v.value(x), lambda: v.kneighbors(x), v.describe):
        with pytest.raises(NotFittedError, match="This Valuator is not fitted yet"):
            call()
    for name in FITTED:
        # ours (an InputError, so the CLI prints it) and scikit-learn's, for code written for it
        with pytest.raises(InputError, match="not fitted yet"):
            getattr(v, name)
        with pytest.raises(sklearn.exceptions.NotFittedError):
            getattr(v, name)
        assert not hasattr(v, name)
    with pytest.raises(sklearn.exceptions.NotFittedError):
        check_is_fitted(v)
    v.fit(x)
    check_is_fitted(v)
    assert all(hasattr(v, name) for name in FITTED)


def test_fitted_attributes_describe_the_fit(x):
    v = Valuator(k=4, index="exact", temperature=0.5).fit(x, ids=[f"t{i}" for i in range(60)])
    assert v.embeddings_.shape == (60, 8) and v.embeddings_.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v.embeddings_, axis=1), 1.0, rtol=1e-6)
    assert v.faiss_index_.ntotal == 60 and v.n_train_ == 60 and v.train_ids_[3] == "t3"
    assert v.index_params_.kind == "exact" and v.build_seconds_ >= 0
    assert v.describe()["embeddings_sha256"] == v.embeddings_sha256_
    with pytest.raises(AttributeError):
        v.credit_rule_ = CreditRule(2.0)  # type: ignore[misc]


def test_credit_rule_is_the_rule_of_the_values(x, tmp_path):
    g = x[:10] + 0.1
    v = Valuator(k=4, index="exact", temperature=0.05, credit="paper").fit(x)
    assert v.credit_rule_ == CreditRule(0.05)
    r = v.value(g)
    d, rows = v.kneighbors(g)
    expected = v.credit_rule_.assign(d, rows, v.n_train_)
    np.testing.assert_array_equal(r.values, expected.values)
    np.testing.assert_array_equal(r.credits, expected.credits)
    # a parameter changed after fit takes effect at the next fit, not in between
    v.set_params(temperature=3.0)
    assert v.credit_rule_ == CreditRule(0.05)
    np.testing.assert_array_equal(v.value(g).values, r.values)
    # the calibrated rule: T from the training set, credits scaled by the attributable share
    c = Valuator(k=4, index="exact").fit(x)
    rule = c.credit_rule_
    assert rule.name == "calibrated" and rule.temperature is None
    rc = c.value(g)
    expected = rule.assign(*c.kneighbors(g), c.n_train_, share=rc.share)
    np.testing.assert_array_equal(rc.values, expected.values)
    assert Valuator.load(v.fit(x).save(tmp_path / "ix")).credit_rule_ == CreditRule(3.0)


def test_the_search_hook_gets_the_valuator_and_prepared_queries(x):
    v = Valuator(k=3, index="exact").fit(x)
    seen = []

    def hook(valuator, queries, k):
        seen.append((valuator, queries, k))
        return v.kneighbors(x[:5] * 2.0)  # what the local search returns for these queries

    r = v.value(x[:5] * 2.0, search=hook)
    ((valuator, queries, k),) = seen
    assert valuator is v and k == 3
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(r.values, v.value(x[:5] * 2.0).values)
