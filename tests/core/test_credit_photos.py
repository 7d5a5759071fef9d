"""The default credit on photo-like data: an edited copy hands most of its credit to its source,
and a pure-noise image hands out little.

Real photographs (scikit-image's sample images) cut into 96-pixel tiles make the training set;
the generated set holds edited copies of 30 training tiles (a mirror image, a 6-pixel crop
zoomed back, a colour and brightness change) and 10 images of pure noise. All embedded with the
default image embedder (EfficientNet-Lite0) and valued with default settings.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance

TILE = 96
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "camera",
          "coins", "moon", "brick", "grass", "gravel", "horse")  # fmt: skip


def _edit(tile: Image.Image, kind: int) -> Image.Image:
    if kind == 0:
        return tile.transpose(Image.FLIP_LEFT_RIGHT)
    if kind == 1:
        return tile.crop((6, 6, TILE - 6, TILE - 6)).resize((TILE, TILE), Image.BICUBIC)
    bright = ImageEnhance.Brightness(tile).enhance(1.15)
    return ImageEnhance.Color(bright).enhance(0.6)


@pytest.fixture(scope="module")
def photo_result(photo_tiles):
    pytest.importorskip("skimage")
    from gmvaluator import Valuator
    from gmvaluator.embed import get_embedder

    train = [t for name in PHOTOS for t in photo_tiles(name)]
    rng = np.random.default_rng(0)
    sources = rng.choice(len(train), 30, replace=False)
    edits = [_edit(train[s], i % 3) for i, s in enumerate(sources)]
    noise = [
        Image.fromarray(rng.integers(0, 256, (TILE, TILE, 3), dtype=np.uint8)) for _ in range(10)
    ]
    embedder = get_embedder("efficientnet-lite0")

    def embed(images: list[Image.Image]) -> np.ndarray:
        return np.concatenate(
            [embedder.embed_batch(images[s : s + 32]) for s in range(0, len(images), 32)]
        )

    result = Valuator().fit(embed(train)).value(embed(edits + noise))
    return result, sources


def test_an_edited_copy_hands_its_source_at_least_half_of_its_credit(photo_result):
    result, sources = photo_result
    copies = slice(0, len(sources))
    hit = result.indices[copies] == sources[:, None]
    source_share = (result.credits[copies] * hit).sum(axis=1) / result.quality[copies]
    assert source_share.mean() >= 0.5, source_share.round(2)


def test_a_noise_image_hands_out_at_most_a_fifth_of_what_a_copy_hands_out(photo_result):
    result, sources = photo_result
    handed = result.credits.sum(axis=1)
    copies, noise = handed[: len(sources)], handed[len(sources) :]
    assert noise.mean() <= copies.mean() / 5, (noise.round(3), copies.mean())
    assert (result.unattributed[len(sources) :] > 0.8).all()
