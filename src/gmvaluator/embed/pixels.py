"""Raw pixels as an embedding: the baseline that learned embedders must beat.

Each image is converted to one colour mode, resized to ``size`` x ``size`` (bilinear) and
flattened to float32 values in [0, 1]. Nothing is centred or normalised here: the index
normalises for cosine distance, and squared L2 on raw pixels stays meaningful as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from gmvaluator.errors import InputError, check_param
from gmvaluator.sources.base import Kind, array_to_image

# PIL modes that hold one intensity channel (an alpha channel, if any, is dropped).
_SINGLE_CHANNEL = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"})
_MODES = ("auto", "L", "RGB")


class PixelEmbedder:
    """Resized raw pixels, flattened: ``size*size`` values for mode "L", three times that for RGB.

    ``mode="auto"`` picks "L" when the first batch this embedder sees is single-channel (judged by
    its first image, or by the shape of an array batch) and "RGB" otherwise, then keeps that mode
    for every later item and dataset, so that training and generated sets embedded by one
    instance always share a dimension. ``settings()`` reports the resolved mode once known.
    """

    name = "pixels"
    # Bump whenever the preprocessing changes, so that caches made by the old code are refused.
    version = "1"
    kind: Kind = "image"
    # embed_dataset hands this embedder array slices instead of PIL images when it can.
    accepts_arrays = True

    def __init__(self, size: int = 28, mode: str = "auto") -> None:
        ok_size = isinstance(size, int) and not isinstance(size, bool) and 1 <= size <= 4096
        check_param("PixelEmbedder", "size", size, ok_size, "an int in the range [1, 4096]")
        check_param("PixelEmbedder", "mode", mode, mode in _MODES, "one of 'auto', 'L', 'RGB'")
        self.size = size
        self.mode = mode
        self.mode_: str | None = None if mode == "auto" else mode

    def settings(self) -> dict[str, Any]:
        return {"size": self.size, "mode": self.mode_ or self.mode, "resample": "bilinear"}

    def embed_batch(self, items: Sequence[Any]) -> np.ndarray:
        """Embed PIL images, or an (B,H,W) / (B,H,W,C) array (uint8, or float in [0, 1])."""
        if len(items) == 0:
            raise InputError(
                "PixelEmbedder.embed_batch got an empty batch. Pass at least one image."
            )
        if isinstance(items, np.ndarray):
            return self._embed_array(items)
        return self._embed_images(list(items))

    def _resolve_mode(self, single_channel: bool) -> str:
        if self.mode_ is None:
            self.mode_ = "L" if single_channel else "RGB"
        return self.mode_

    def _embed_images(self, images: list[Image.Image]) -> np.ndarray:
        mode = self._resolve_mode(images[0].mode in _SINGLE_CHANNEL)
        out = np.empty((len(images), self._dim(mode)), dtype=np.float32)
        for k, im in enumerate(images):
            # Convert before resizing: bilinear resampling is undefined on palette images.
            im = im.convert(mode).resize((self.size, self.size), Image.Resampling.BILINEAR)
            out[k] = np.asarray(im, dtype=np.float32).reshape(-1)
        out /= np.float32(255.0)
        return out

    def _embed_array(self, a: np.ndarray) -> np.ndarray:
        if a.ndim not in (3, 4):
            raise InputError(
                f"PixelEmbedder got an image array of shape {a.shape}. Pass (N,H,W) or (N,H,W,C)."
            )
        channels = 1 if a.ndim == 3 else a.shape[3]
        mode = self._resolve_mode(channels == 1)
        same_size = a.shape[1:3] == (self.size, self.size)
        if not same_size or channels not in (1, 3) or (channels == 3 and mode == "L"):
            # Resizing or a luma conversion is PIL's job; the shortcut below must match it exactly.
            return self._embed_images([array_to_image(x) for x in a])
        x = _unit_scale(a).reshape(len(a), self.size, self.size, channels)
        if channels == 1 and mode == "RGB":
            x = np.repeat(x, 3, axis=3)
        return np.ascontiguousarray(x.reshape(len(a), -1), dtype=np.float32)

    def _dim(self, mode: str) -> int:
        return self.size * self.size * (1 if mode == "L" else 3)


def _unit_scale(a: np.ndarray) -> np.ndarray:
    """The values PIL would see, in [0, 1]: uint8 as is, anything else quantised like
    ``array_to_image`` does. NaN stays NaN so that embed_dataset can name the bad item."""
    if a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(255.0)
    q = np.floor(np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5)
    return q.astype(np.float32) / np.float32(255.0)
