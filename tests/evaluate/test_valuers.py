"""The valuers of an evaluation build their Valuator from the spec's Valuator parameters."""

from __future__ import annotations

import numpy as np
import pytest

from gmvaluator import Valuator
from gmvaluator.evaluate import ValuerSpec, value_images
from gmvaluator.evaluate.valuers import random_result


def test_spec_fields_named_after_valuator_parameters_are_passed_with_its_defaults():
    spec = ValuerSpec("pq", index="pq", m=8, rerank="none", quality=True)
    assert spec.valuator_params() == {
        "index": "pq", "metric": "cosine", "temperature": "auto", "credit": "calibrated",
        "m": 8, "nbits": None, "nlist": None, "nprobe": None,
    }  # fmt: skip
    defaults = Valuator().get_params()
    for name, value in ValuerSpec("default").valuator_params().items():
        assert value == defaults[name], name


def test_value_images_values_with_the_spec_parameters():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(80, 8, 8), dtype=np.uint8)
    spec = ValuerSpec("sharp", index="exact", metric="sqeuclidean", temperature=0.1)
    r = value_images(spec, train, train[:12], 4, seed=3)
    params = r.config["valuator"]
    assert (params["k"], params["random_state"], params["recall_sample"]) == (4, 3, 200)
    assert {key: params[key] for key in spec.valuator_params()} == spec.valuator_params()
    np.testing.assert_array_equal(r.indices[:, 0], np.arange(12))


def test_the_random_baseline_shares_each_sample_equally():
    r = random_result(50, 7, 5, seed=1)
    np.testing.assert_allclose(r.credits, 0.2)
    assert r.values.sum() == pytest.approx(7.0) and r.n_matches.sum() == 35
    assert all(len(set(row)) == 5 for row in r.indices)
