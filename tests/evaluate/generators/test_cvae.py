from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from gmvaluator.errors import InputError
from gmvaluator.evaluate.generators import CVAE, default_epochs, train_cvae

EPOCHS = 20  # about 1 s on one core; enough for class-recognisable 8x8 digits


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    images = np.round(d.images * (255 / 16)).astype(np.uint8)
    return images, d.target.astype(np.int64)


@pytest.fixture(scope="module")
def model(digits: tuple[np.ndarray, np.ndarray]) -> CVAE:
    images, labels = digits
    return train_cvae(images, labels, n_classes=10, epochs=EPOCHS, seed=0, progress=False)


def test_samples_have_shape_dtype_and_range(model: CVAE) -> None:
    out = model.sample(np.array([0, 3, 9, 9]), seed=1)
    assert out.shape == (4, 8, 8)
    assert out.dtype == np.uint8
    assert out.max() > 128  # not a blank image


def test_same_seed_same_samples_and_other_seed_differs(model: CVAE) -> None:
    labels = np.arange(10).repeat(3)
    a = model.sample(labels, seed=7)
    np.testing.assert_array_equal(a, model.sample(labels, seed=7))
    assert not np.array_equal(a, model.sample(labels, seed=8))


def test_samples_do_not_depend_on_batching(model: CVAE) -> None:
    labels = np.arange(10).repeat(300)  # more than one internal batch
    full = model.sample(labels, seed=3)
    np.testing.assert_array_equal(full[:5], model.sample(labels[:5], seed=3))


def test_training_is_deterministic(digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = digits
    kw = {"n_classes": 10, "epochs": 2, "hidden": 32, "seed": 5, "progress": False}
    a, b = train_cvae(images, labels, **kw), train_cvae(images, labels, **kw)  # type: ignore[arg-type]
    assert a.history == b.history
    for (k, va), vb in zip(a.net.state_dict().items(), b.net.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


def test_training_leaves_global_rng_and_threads_alone(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    images, labels = digits
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_cvae(images[:50], labels[:50], n_classes=10, epochs=1, hidden=8, progress=False)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_classifier_recognises_the_conditioning_class(
    model: CVAE, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = digits
    clf = LogisticRegression(max_iter=2000).fit(images.reshape(len(images), -1) / 255, labels)
    wanted = np.arange(10).repeat(50)
    generated = model.sample(wanted, seed=0)
    accuracy = np.mean(clf.predict(generated.reshape(len(generated), -1) / 255) == wanted)
    assert accuracy > 0.7  # chance is 0.1


def test_training_lowers_the_loss(model: CVAE, digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = digits
    untrained = train_cvae(images[:1], labels[:1], n_classes=10, epochs=1, progress=False)
    # one Adam step on one image leaves the network essentially at its initialisation
    before = untrained.loss(images, labels).mean()
    after = model.loss(images, labels).mean()
    assert after < 0.6 * before
    assert model.history[-1] < model.history[0]


def test_loss_is_per_sample_and_repeatable(
    model: CVAE, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = digits
    loss = model.loss(images[:20], labels[:20], n_draws=4)
    assert loss.shape == (20,)
    assert np.all(np.isfinite(loss)) and np.all(loss > 0)
    np.testing.assert_array_equal(loss, model.loss(images[:20], labels[:20], n_draws=4))
    # the wrong label explains an image worse than its own
    wrong = model.loss(images[:200], (labels[:200] + 1) % 10, n_draws=4)
    assert np.mean(wrong > model.loss(images[:200], labels[:200], n_draws=4)) > 0.8


def test_save_load_round_trips_exactly(model: CVAE, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model.save(tmp_path / "m")
    back = CVAE.load(tmp_path / "m")
    assert back.settings == model.settings
    assert back.history == model.history
    labels = np.arange(10)
    np.testing.assert_array_equal(back.sample(labels, seed=2), model.sample(labels, seed=2))
    meta = json.loads((tmp_path / "m" / "cvae.json").read_text())
    assert meta["settings"]["height"] == 8 and meta["train_params"]["epochs"] == EPOCHS


def test_save_refuses_to_overwrite(model: CVAE, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model.save(tmp_path)
    with pytest.raises(InputError, match="already exists.*overwrite=True"):
        model.save(tmp_path)
    model.save(tmp_path, overwrite=True)


def test_load_detects_modified_weights(model: CVAE, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model.save(tmp_path)
    with open(tmp_path / "cvae.pt", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(InputError, match="does not match the hash"):
        CVAE.load(tmp_path)


def test_load_names_a_missing_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=r"cvae\.pt not found"):
        CVAE.load(tmp_path)


def test_default_epochs() -> None:
    assert default_epochs(60_000) == 10
    assert default_epochs(1_797) == 50
    assert default_epochs(10**9) == 1
    with pytest.raises(InputError, match="'n_items' parameter of default_epochs must be"):
        default_epochs(0)


@pytest.mark.parametrize(
    ("images", "labels", "match"),
    [
        (np.zeros((4, 8, 8), np.float32), np.zeros(4, int), "uint8 \\(N, H, W\\)"),
        (np.zeros((4, 8, 8, 1), np.uint8), np.zeros(4, int), "drop any channel axis"),
        (np.zeros((4, 8, 8), np.uint8), np.zeros(3, int), "4 images but 3 labels"),
        (
            np.zeros((4, 8, 8), np.uint8),
            np.full(4, 10),
            r"labels must lie in \[0, 10\)",
        ),
        (np.zeros((4, 8, 8), np.uint8), np.zeros(4), "1-D int array"),
        (np.zeros((0, 8, 8), np.uint8), np.zeros(0, int), "images is empty"),
    ],
)
def test_train_rejects_bad_data(images: np.ndarray, labels: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        train_cvae(images, labels, n_classes=10, epochs=1, progress=False)


def test_train_rejects_bad_parameter() -> None:
    x, y = np.zeros((4, 8, 8), np.uint8), np.zeros(4, int)
    msg = "The 'epochs' parameter of train_cvae must be an int >= 1. Got 0 instead."
    with pytest.raises(InputError, match=msg):
        train_cvae(x, y, n_classes=10, epochs=0)


def test_sample_and_loss_reject_bad_input(model: CVAE) -> None:
    with pytest.raises(InputError, match="CVAE.sample: labels must lie"):
        model.sample(np.array([10]), seed=0)
    with pytest.raises(InputError, match="images are 28x28 but the model was trained on 8x8"):
        model.loss(np.zeros((2, 28, 28), np.uint8), np.zeros(2, int))
