"""A class-conditional Gaussian mixture: the cheapest reference generator.

One scikit-learn ``GaussianMixture`` (diagonal covariances) per class over pixels in [0, 1].
Same interface as the CVAE: ``sample(labels, seed)`` gives uint8 (N, H, W) images and
``loss(images, labels)`` the per-image negative log-likelihood (nats; lower is better).
Saved as ``gmm.npz`` (parameters) next to ``gmm.json`` (settings and hash), never pickle.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator.errors import InputError, check_param
from gmvaluator.evaluate.generators._checks import check_data, check_sample, is_int
from gmvaluator.files import atomic_path, hash_file, read_json, write_json

FORMAT = "gmvaluator.gmm/1"
_PARAMS, _SETTINGS = "gmm.npz", "gmm.json"
# Pixels are discrete; a floor on each variance keeps constant border pixels from giving
# unbounded densities.
_VAR_FLOOR = 1e-3


@dataclass(frozen=True)
class GMMSettings:
    height: int
    width: int
    n_classes: int
    n_components: int


class ClassGMM:
    """Per-class mixtures: ``weights`` (C, K), ``means`` and ``variances`` (C, K, H*W)."""

    def __init__(
        self,
        settings: GMMSettings,
        weights: np.ndarray,
        means: np.ndarray,
        variances: np.ndarray,
        train_params: dict[str, Any] | None = None,
        train_seconds: float = 0.0,
    ) -> None:
        self.settings = settings
        self.weights = weights
        self.means = means
        self.variances = variances
        self.train_params = dict(train_params or {})
        self.train_seconds = train_seconds

    @property
    def image_shape(self) -> tuple[int, int]:
        return (self.settings.height, self.settings.width)

    def sample(self, labels: np.ndarray, seed: int = 0) -> np.ndarray:
        """One uint8 image per label, drawn from that class's mixture; seeded."""
        y = check_sample(labels, seed, self.settings.n_classes, "ClassGMM.sample")
        rng = np.random.default_rng(seed)
        u = rng.random(len(y))
        comp = (u[:, None] > np.cumsum(self.weights[y], axis=1)).sum(axis=1)
        comp = np.minimum(comp, self.settings.n_components - 1)
        mu, var = self.means[y, comp], self.variances[y, comp]
        x = mu + np.sqrt(var) * rng.standard_normal(mu.shape)
        px = np.clip(np.round(x * 255), 0, 255).astype(np.uint8)
        return px.reshape(len(y), *self.image_shape)

    def loss(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Per-image negative log-likelihood under its class's mixture, float64 (N,)."""
        from scipy.special import logsumexp

        x, y = check_data(
            images, labels, self.settings.n_classes, "ClassGMM.loss", self.image_shape
        )
        v = x.reshape(len(x), -1).astype(np.float64) / 255.0
        mu, var = self.means[y], self.variances[y]  # (N, K, D)
        log_p = -0.5 * (((v[:, None, :] - mu) ** 2) / var + np.log(2 * np.pi * var)).sum(2)
        with np.errstate(divide="ignore"):  # unused components have weight 0
            log_w = np.log(self.weights[y])
        return -logsumexp(log_p + log_w, axis=1)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        folder = Path(path)
        target = folder / _PARAMS
        if target.exists() and not overwrite:
            raise InputError(f"{target} already exists; choose another folder or overwrite=True.")
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, weights=self.weights, means=self.means, variances=self.variances)
        meta = {
            "format": FORMAT,
            "settings": asdict(self.settings),
            "train_params": self.train_params,
            "train_seconds": self.train_seconds,
            "params_sha256": hash_file(target),
        }
        write_json(folder / _SETTINGS, meta)
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClassGMM:
        folder = Path(path)
        for p in (folder / _PARAMS, folder / _SETTINGS):
            if not p.is_file():
                raise InputError(f"{p} not found; give a folder written by ClassGMM.save.")
        meta = read_json(folder / _SETTINGS)
        if meta.get("format") != FORMAT:
            raise InputError(f"{folder / _SETTINGS} is not a saved ClassGMM ({FORMAT}).")
        if hash_file(folder / _PARAMS) != meta["params_sha256"]:
            raise InputError(f"{folder / _PARAMS} does not match its hash; save the model again.")
        with np.load(folder / _PARAMS, allow_pickle=False) as z:
            arrays = {key: z[key] for key in ("weights", "means", "variances")}
        return cls(
            GMMSettings(**meta["settings"]),
            train_params=meta["train_params"],
            train_seconds=meta["train_seconds"],
            **arrays,
        )


def train_gmm(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    n_classes: int,
    n_components: int = 5,
    seed: int = 0,
) -> ClassGMM:
    """Fit one diagonal Gaussian mixture per class (k-means initialised, seeded)."""
    from sklearn.mixture import GaussianMixture

    ok = is_int(n_components) and n_components >= 1
    check_param("train_gmm", "n_components", n_components, ok, "an int >= 1")
    x, y = check_data(images, labels, n_classes, "train_gmm")
    v = x.reshape(len(x), -1).astype(np.float64) / 255.0
    d = v.shape[1]
    weights = np.full((n_classes, n_components), 1.0 / n_components)
    means = np.full((n_classes, n_components, d), 0.5)
    variances = np.full((n_classes, n_components, d), 0.25)
    t0 = time.perf_counter()
    for c in range(n_classes):
        vc = v[y == c]
        if len(vc) == 0:
            continue
        kc = min(n_components, len(vc))
        gm = GaussianMixture(kc, covariance_type="diag", reg_covar=_VAR_FLOOR, random_state=seed)
        gm.fit(vc)
        weights[c], means[c], variances[c] = 0.0, 0.5, 0.25
        weights[c, :kc], means[c, :kc], variances[c, :kc] = gm.weights_, gm.means_, gm.covariances_
        weights[c, kc:] = 0.0
    settings = GMMSettings(x.shape[1], x.shape[2], n_classes, n_components)
    params = {"n_components": n_components, "seed": seed, "n_items": len(x)}
    return ClassGMM(settings, weights, means, variances, params, time.perf_counter() - t0)
