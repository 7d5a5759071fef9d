"""No-reference image quality backends that need no downloaded weights: BRISQUE, PIQE and a
scikit-image sharpness / noise score; and MANIQA through pyiqa from a local weights file.

Each ``score`` returns raw scores where higher is better and 0 is the floor (see
``gmvaluator.quality.normalize`` for how they become q_j). Images are converted to RGB and, when
larger than ``max_side`` pixels on their longer side, shrunk to it first: these measures are
not scale-free, so the size is part of ``settings()``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gmvaluator import env
from gmvaluator.embed.deps import dist_version, import_optional, require
from gmvaluator.errors import InputError, MissingDependencyError, check_param


def rgb_array(image: Image.Image, max_side: int) -> np.ndarray:
    """An image as (H, W, 3) uint8, shrunk (keeping its aspect) so its longer side <= max_side."""
    im = image.convert("RGB")
    scale = max_side / max(im.size)
    if scale < 1:
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(im)


class _ImageScorer:
    """Shared parts: the kind check, the size limit and per-item scoring."""

    name = "image"
    kind = "image"

    def __init__(self, max_side: int = 512) -> None:
        ok = isinstance(max_side, int) and not isinstance(max_side, bool) and max_side >= 32
        check_param(type(self).__name__, "max_side", max_side, ok, "an int in the range [32, inf)")
        self.max_side = max_side

    def settings(self) -> dict[str, Any]:
        return {"max_side": self.max_side}

    def score(self, items: Sequence[Any], ids: Sequence[Any]) -> np.ndarray:
        out = np.empty(len(items), dtype=np.float64)
        for j, item in enumerate(items):
            if not isinstance(item, Image.Image):
                raise InputError(
                    f"quality {self.name!r} scores images, but generated sample {str(ids[j])!r} is "
                    f"a {type(item).__name__}. Use --quality none or file:PATH for other kinds."
                )
            out[j] = self.score_one(rgb_array(item, self.max_side))
        return out

    def score_one(self, rgb: np.ndarray) -> float:
        raise NotImplementedError


class _HundredPointScorer(_ImageScorer):
    """A score s from 0 (best) to about 100 (worst) that ``points`` computes with ``package``
    (whose module has the same name) and OpenCV; raw = (100 - s) / 100, clipped to [0, 1]."""

    package = ""

    def __init__(self, max_side: int = 512) -> None:
        super().__init__(max_side)
        require(self.package, self.package, f"the {self.name} quality score")
        require("cv2", "opencv-python-headless", f"the {self.name} quality score")
        self.version = dist_version(self.package)

    def score_one(self, rgb: np.ndarray) -> float:
        s = self.points(rgb)
        return float(np.clip((100.0 - s) / 100.0, 0.0, 1.0))

    def points(self, rgb: np.ndarray) -> float:
        raise NotImplementedError


class BrisqueScorer(_HundredPointScorer):
    """BRISQUE (Mittal et al. 2012) from the PyPI package ``brisque``: raw = (100 - s) / 100,
    clipped to [0, 1], where s is BRISQUE's score (0 best, about 100 worst)."""

    name = "brisque"
    package = "brisque"

    def points(self, rgb: np.ndarray) -> float:
        import cv2
        import skimage.color

        model = _brisque_model()
        gray = skimage.color.rgb2gray(rgb)
        fine = model.calculate_brisque_features(gray, kernel_size=7, sigma=7 / 6)
        half = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
        coarse = model.calculate_brisque_features(half, kernel_size=7, sigma=7 / 6)
        # The package's features are 1-element arrays; NumPy >= 2.4 refuses float() of those,
        # which is where brisque.BRISQUE.score fails. Flatten them to plain floats first.
        feats = np.array(
            [float(np.asarray(f, dtype=np.float64).reshape(-1)[0]) for f in [*fine, *coarse]]
        )
        return float(model.calculate_image_quality_score(feats))


@functools.lru_cache(maxsize=1)
def _brisque_model() -> Any:
    with warnings.catch_warnings():
        # brisque imports the deprecated scipy.ndimage.filters namespace
        warnings.simplefilter("ignore", DeprecationWarning)
        from brisque import BRISQUE

    return BRISQUE(url=False)


class PiqeScorer(_HundredPointScorer):
    """PIQE (Venkatanath et al. 2015) from ``pypiqe``: raw = (100 - s) / 100, clipped to
    [0, 1], where s is PIQE's score (0 best, 100 worst)."""

    name = "piqe"
    package = "pypiqe"

    def points(self, rgb: np.ndarray) -> float:
        from pypiqe import piqe

        return float(piqe(rgb)[0])


class SharpnessScorer(_ImageScorer):
    """A sharpness and noise score, in [0, 1]:

        raw = (1 - blur_effect) * exp(-noise_sigma / noise_scale)

    ``blur_effect`` (scikit-image; Crété-Roffet et al. 2007) is 0 for a sharp and 1 for a fully
    blurred image; ``noise_sigma`` is Immerkær's (1996) estimate of Gaussian noise on the grey
    image in [0, 1] (a Laplacian-difference filter; scikit-image's own estimate needs
    PyWavelets). Noise makes an image look sharp to the first term, hence the second.
    """

    name = "sharpness"

    def __init__(self, max_side: int = 512, noise_scale: float = 0.05) -> None:
        super().__init__(max_side)
        check_param("SharpnessScorer", "noise_scale", noise_scale, noise_scale > 0, "a float > 0")
        require("skimage", "scikit-image", "the sharpness quality score")
        self.noise_scale = float(noise_scale)
        self.version = dist_version("scikit-image")

    def settings(self) -> dict[str, Any]:
        return {"max_side": self.max_side, "noise_scale": self.noise_scale}

    def score_one(self, rgb: np.ndarray) -> float:
        from skimage.color import rgb2gray
        from skimage.measure import blur_effect

        gray = rgb2gray(rgb)
        blur = float(blur_effect(gray))
        sigma = noise_sigma(gray)
        return float(np.clip(1.0 - blur, 0.0, 1.0) * np.exp(-sigma / self.noise_scale))


class ManiqaScorer(_ImageScorer):
    """MANIQA (Yang et al. 2022, the quality model of the GMValuator paper) through ``pyiqa``,
    from a local weights file: ``maniqa:PATH`` or the environment variable
    ``GMVALUATOR_MANIQA_WEIGHTS``. Nothing is downloaded. Raw = pyiqa's score (higher better)."""

    name = "maniqa"

    def __init__(self, weights: str | None = None, max_side: int = 512, device: str = "cpu"):
        super().__init__(max_side)
        path = weights or env.MANIQA_WEIGHTS.text()
        if not path or not Path(path).is_file():
            where = f"{path!r} does not exist" if path else "no weights file was given"
            raise MissingDependencyError(
                f"the maniqa quality score needs local MANIQA weights for pyiqa "
                f"(e.g. ckpt_koniq10k.pt), and {where}. Download them on a machine with access "
                f"and pass --quality maniqa:PATH or set {env.MANIQA_WEIGHTS.name}=PATH."
            )
        require("pyiqa", "pyiqa", "the maniqa quality score")
        self.weights = str(path)
        self.device = device
        self.version = dist_version("pyiqa")

    def settings(self) -> dict[str, Any]:
        return {"max_side": self.max_side, "weights": Path(self.weights).name}

    def score_one(self, rgb: np.ndarray) -> float:
        import torch

        metric = _maniqa_metric(self.weights, self.device)
        x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255.0
        with torch.inference_mode():
            return max(0.0, float(metric(x.to(self.device)).item()))


@functools.lru_cache(maxsize=2)
def _maniqa_metric(weights: str, device: str) -> Any:
    pyiqa = import_optional("pyiqa", "pyiqa", "the maniqa quality score")

    return pyiqa.create_metric("maniqa", device=device, pretrained_model_path=weights)


def noise_sigma(gray: np.ndarray) -> float:
    """Immerkær's estimate of the standard deviation of Gaussian noise in a grey image."""
    from scipy.signal import convolve2d

    h, w = gray.shape
    if h < 3 or w < 3:
        return 0.0
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    total = np.abs(convolve2d(gray.astype(np.float64), kernel, mode="valid")).sum()
    return float(total * np.sqrt(np.pi / 2) / (6.0 * (w - 2) * (h - 2)))
