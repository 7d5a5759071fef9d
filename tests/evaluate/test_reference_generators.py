"""The Gaussian-mixture reference generator: seeded, class-conditional, saved and reloaded."""

from __future__ import annotations

import numpy as np
import pytest

from gmvaluator.errors import InputError
from gmvaluator.evaluate.generators.gmm import ClassGMM, train_gmm
from gmvaluator.evaluate.generators.reference import load_reference, reference_loss


@pytest.fixture(scope="module")
def gmm(digits_images):
    x, y = digits_images
    return train_gmm(x[:800], y[:800], n_classes=10, n_components=3, seed=0)


def test_samples_are_seeded_and_follow_their_class(gmm, digits_images):
    x, y = digits_images
    labels = np.repeat(np.arange(10), 10)
    a, b = gmm.sample(labels, seed=1), gmm.sample(labels, seed=1)
    assert a.dtype == np.uint8 and a.shape == (100, 8, 8) and (a == b).all()
    # the nearest real digit of a generated "3" is usually a 3
    d = ((a.reshape(100, 1, -1).astype(float) - x.reshape(1, len(x), -1)) ** 2).sum(2)
    assert (y[d.argmin(1)] == labels).mean() > 0.8


def test_loss_prefers_real_digits_over_noise(gmm, digits_images):
    x, y = digits_images
    noise = np.random.default_rng(0).integers(0, 256, size=(50, 8, 8)).astype(np.uint8)
    assert reference_loss(gmm, x[:50], y[:50]).mean() < reference_loss(gmm, noise, y[:50]).mean()


def test_save_load_round_trip_and_tamper_check(gmm, digits_images, tmp_path):
    x, y = digits_images
    gmm.save(tmp_path / "g")
    again = load_reference(tmp_path / "g")
    assert isinstance(again, ClassGMM)
    np.testing.assert_array_equal(again.sample(y[:20], seed=4), gmm.sample(y[:20], seed=4))
    np.testing.assert_allclose(again.loss(x[:20], y[:20]), gmm.loss(x[:20], y[:20]))
    with pytest.raises(InputError, match="already exists"):
        gmm.save(tmp_path / "g")
    (tmp_path / "g" / "gmm.npz").write_bytes(b"junk")
    with pytest.raises(InputError, match="does not match its hash"):
        ClassGMM.load(tmp_path / "g")


@pytest.mark.parametrize("family", ["gan", "diffusion"])
def test_torch_families_are_seeded_and_reload_identically(family, digits_images, tmp_path):
    from gmvaluator.evaluate.generators.reference import train_reference

    x, y = digits_images
    model = train_reference(family, x[:200], y[:200], n_classes=10, seed=3, epochs=2)
    again = train_reference(family, x[:200], y[:200], n_classes=10, seed=3, epochs=2)
    labels = np.arange(10)
    a = model.sample(labels, seed=5)
    assert a.shape == (10, 8, 8) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, again.sample(labels, seed=5))
    model.save(tmp_path / family)
    np.testing.assert_array_equal(load_reference(tmp_path / family).sample(labels, seed=5), a)


def test_diffusion_loss_is_seeded_and_a_gan_has_none(digits_images):
    from gmvaluator.evaluate.generators.reference import train_reference

    x, y = digits_images
    diffusion = train_reference("diffusion", x[:200], y[:200], n_classes=10, epochs=2)
    first = reference_loss(diffusion, x[:20], y[:20])
    np.testing.assert_array_equal(first, reference_loss(diffusion, x[:20], y[:20]))
    gan = train_reference("gan", x[:200], y[:200], n_classes=10, epochs=1)
    with pytest.raises(InputError, match="CGAN has no likelihood"):
        reference_loss(gan, x[:20], y[:20])


def test_diffusion_draws_cover_the_schedule_evenly(digits_images):
    """The reference loss visits every step (its average is exact over the steps), and the
    gradient model's draws of one item spread over the schedule rather than clumping."""
    import torch

    from gmvaluator.evaluate.generators import diffusion as dm

    gen = torch.Generator().manual_seed(0)
    steps = [int(dm._stratified_steps(1, gen, d, 10, 10)[0]) for d in range(10)]
    assert steps == list(range(10))  # D = steps: each step once
    quarters = [int(dm._stratified_steps(1, gen, d, 4, 100)[0]) // 25 for d in range(4)]
    assert quarters == [0, 1, 2, 3]  # D = 4: one step in each quarter
    x, y = digits_images
    model = dm.train_diffusion(x[:100], y[:100], n_classes=10, epochs=1, steps=20)
    gm = model.gradient_model()
    assert gm.name == "diffusion/stratified" and gm.noise_takes_draw()
    drawn = [int(gm.noise(1, gen, draw=d, draws=5)["t"][0]) // 4 for d in range(5)]
    assert drawn == [0, 1, 2, 3, 4]
    assert model.gradient_model(timesteps="random").name == "diffusion"
    with pytest.raises(InputError, match="timesteps"):
        model.gradient_model(timesteps="every")
    # one draw per step and the same noise: the loss is the mean of the per-step losses
    full = model.loss(x[:5], y[:5], n_draws=20, seed=1)
    assert full.shape == (5,) and np.isfinite(full).all()
    with pytest.raises(InputError, match="n_draws"):
        model.loss(x[:5], y[:5], n_draws=0)
