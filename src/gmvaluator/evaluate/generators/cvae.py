"""A small class-conditional VAE: the generator the ``demo`` command trains in-process.

MLP encoder and decoder, each conditioned on a one-hot label; Bernoulli likelihood on pixels
scaled to [0, 1]. Numpy in, numpy out: uint8 (N, H, W) images and int labels. Seeded runs are
deterministic within one machine and thread count, and never touch torch's global random state.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gmvaluator.errors import check_param
from gmvaluator.evaluate.generators._checks import check_data, check_sample, is_int, needs_labels
from gmvaluator.evaluate.generators._torchio import (
    adam_step,
    build_seeded,
    load_module,
    one_hot,
    save_module,
    seeded,
    shuffled_batches,
    to_unit,
    torch_threads,
)
from gmvaluator.modelaware.model import Examples, GradientModel

FORMAT = "gmvaluator.cvae/1"
#: Saved as ``cvae.pt`` (weights) next to ``cvae.json`` (settings, history, hash).
STEM = "cvae"

# Sample-passes (items x epochs) that train_cvae's default budget allows; see default_epochs.
_PASS_BUDGET = 600_000
_MAX_EPOCHS = 50
_EVAL_BATCH = 2048


@dataclass(frozen=True)
class CVAESettings:
    """Everything needed to rebuild the network: image size, classes and layer widths."""

    height: int
    width: int
    n_classes: int
    latent_dim: int
    hidden: int


class _Net(nn.Module):
    def __init__(self, s: CVAESettings) -> None:
        super().__init__()
        d = s.height * s.width
        self.enc = nn.Sequential(nn.Linear(d + s.n_classes, s.hidden), nn.ReLU())
        self.enc_out = nn.Linear(s.hidden, 2 * s.latent_dim)
        self.dec = nn.Sequential(
            nn.Linear(s.latent_dim + s.n_classes, s.hidden),
            nn.ReLU(),
            nn.Linear(s.hidden, d),
        )

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc_out(self.enc(torch.cat([x, y], 1))).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Pixel logits, (B, H*W)."""
        logits: torch.Tensor = self.dec(torch.cat([z, y], 1))
        return logits

    def neg_elbo(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        gen: torch.Generator | None,
        beta: float = 1.0,
        eps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-sample negative ELBO in nats (KL term weighted by ``beta``), one latent draw
        (``eps``, standard normal, or drawn from ``gen``)."""
        mu, logvar = self.encode(x, y)
        if eps is None:
            eps = torch.randn(mu.shape, generator=gen, dtype=mu.dtype)
        logits = self.decode(mu + eps * torch.exp(0.5 * logvar), y)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        return rec + beta * kl


class CVAE:
    """A trained class-conditional VAE. Build one with ``train_cvae`` or ``CVAE.load``.

    ``history`` holds the mean training objective of each epoch (negative ELBO with the KL term
    weighted by ``beta``, nats per image) and ``train_seconds`` the wall time of training; both
    are saved with the weights.
    """

    def __init__(
        self,
        settings: CVAESettings,
        net: _Net,
        *,
        history: tuple[float, ...] = (),
        train_seconds: float = 0.0,
        train_params: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.net = net
        net.eval()
        self.history = history
        self.train_seconds = train_seconds
        self.train_params = dict(train_params or {})

    @property
    def image_shape(self) -> tuple[int, int]:
        return (self.settings.height, self.settings.width)

    def sample(self, labels: np.ndarray, seed: int = 0) -> np.ndarray:
        """One uint8 (H, W) image per label: the decoder's pixel means at a prior draw of z.

        The same labels and seed give identical images, whatever the batch size used inside.
        """
        y = check_sample(labels, seed, self.settings.n_classes, "CVAE.sample")
        z = torch.randn((len(y), self.settings.latent_dim), generator=seeded(seed))
        out = np.empty((len(y), *self.image_shape), dtype=np.uint8)
        with torch.inference_mode():
            for lo in range(0, len(y), _EVAL_BATCH):
                sl = slice(lo, lo + _EVAL_BATCH)
                p = torch.sigmoid(self.net.decode(z[sl], one_hot(y[sl], self.settings.n_classes)))
                px = (p * 255).round().to(torch.uint8).numpy()
                out[sl] = px.reshape(-1, *self.image_shape)
        return out

    def loss(
        self, images: np.ndarray, labels: np.ndarray, *, n_draws: int = 1, seed: int = 0
    ) -> np.ndarray:
        """Per-image negative ELBO (nats), float64 (N,); lower means the model explains it better.

        Averaged over ``n_draws`` seeded draws of the latent, so repeated calls agree exactly.
        """
        owner = "CVAE.loss"
        check_param(owner, "n_draws", n_draws, is_int(n_draws) and n_draws >= 1, "an int >= 1")
        x, y = check_data(images, labels, self.settings.n_classes, owner, self.image_shape)
        gen = seeded(seed)
        total = np.zeros(len(x), dtype=np.float64)
        with torch.inference_mode():
            for _ in range(n_draws):
                for lo in range(0, len(x), _EVAL_BATCH):
                    sl = slice(lo, lo + _EVAL_BATCH)
                    yb = one_hot(y[sl], self.settings.n_classes)
                    total[sl] += self.net.neg_elbo(to_unit(x[sl]), yb, gen).numpy()
        return total / n_draws

    def gradient_model(self) -> GradientModel:
        """The model-aware re-score's view of this VAE: the training objective (negative ELBO
        with the KL term weighted by the training ``beta``) as ``loss``, the plain negative
        ELBO as the output ``elbo``, one latent draw per example as its noise; items are
        greyscale images of the training size with their class labels."""
        beta = float(self.train_params.get("beta", 1.0))
        s = self.settings

        def prepare(examples: Examples) -> dict[str, torch.Tensor]:
            x = examples.images("L")
            y = check_data(x, needs_labels(examples, "the CVAE"), s.n_classes, "CVAE",
                           self.image_shape)[1]  # fmt: skip
            return {"x": to_unit(x), "y": one_hot(y, s.n_classes)}

        def noise(n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
            return {"eps": torch.randn((n, s.latent_dim), generator=gen)}

        def loss(net: _Net, b: Mapping[str, torch.Tensor]) -> torch.Tensor:
            return net.neg_elbo(b["x"], b["y"], None, beta, b["eps"])

        def elbo(net: _Net, b: Mapping[str, torch.Tensor]) -> torch.Tensor:
            return net.neg_elbo(b["x"], b["y"], None, 1.0, b["eps"])

        outputs = {"elbo": elbo}
        return GradientModel(self.net, loss, prepare, noise, outputs, name="cvae")

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write ``cvae.pt`` (a plain state dict) and ``cvae.json`` (settings, history, hash)."""
        meta = {
            "format": FORMAT,
            "settings": asdict(self.settings),
            "history": list(self.history),
            "train_seconds": self.train_seconds,
            "train_params": self.train_params,
        }
        return save_module(path, STEM, self.net, meta, overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CVAE:
        """Read a folder written by ``save``; the weights must match the hash in the JSON."""
        meta, state = load_module(path, STEM, FORMAT, "CVAE")
        settings = CVAESettings(**meta["settings"])
        net = _Net(settings)
        net.load_state_dict(state)
        return cls(
            settings,
            net,
            history=tuple(meta["history"]),
            train_seconds=float(meta["train_seconds"]),
            train_params=meta["train_params"],
        )


def default_epochs(n_items: int) -> int:
    """Epochs that fit the demo's time budget: about 600,000 image passes, 1 to 50 epochs.

    That is 10 epochs of Fashion-MNIST's 60,000 images (50-60 s on this project's 2-core
    machines, with 85 % of samples recognised as their class) and the 50-epoch cap for
    scikit-learn's 1,797 digits (about 2 s, as the images are 8x8).
    """
    check_param(
        "default_epochs",
        "n_items",
        n_items,
        is_int(n_items) and n_items >= 1,
        "an int >= 1",
    )
    return max(1, min(_MAX_EPOCHS, math.ceil(_PASS_BUDGET / n_items)))


def train_cvae(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    n_classes: int,
    epochs: int,
    latent_dim: int = 16,
    hidden: int = 400,
    batch_size: int = 256,
    lr: float = 2e-3,
    beta: float = 2.0,
    seed: int = 0,
    progress: bool = True,
    num_threads: int | None = 1,
) -> CVAE:
    """Train a conditional VAE on uint8 (N, H, W) images with int labels in [0, n_classes).

    Adam on the mean negative ELBO with its KL term weighted by ``beta``; the seed fixes initial
    weights, shuffling and latent noise. ``beta`` = 2 trades about 1 % of held-out ELBO for
    samples that follow their label: with ``beta`` = 1 the latent carries part of the class, and
    a classifier recognised 68-72 % of Fashion-MNIST samples after 10 epochs instead of 85 %.
    ``num_threads`` is torch's intra-op thread count while training (restored afterwards; None
    keeps the current one): these layers are too small to gain from a second thread, and two
    threads on two busy cores made an epoch 3 to 10 times slower here.
    """
    owner = "train_cvae"
    for name, value, low in [
        ("n_classes", n_classes, 1),
        ("epochs", epochs, 1),
        ("latent_dim", latent_dim, 1),
        ("hidden", hidden, 1),
        ("batch_size", batch_size, 1),
    ]:
        check_param(owner, name, value, is_int(value) and value >= low, f"an int >= {low}")
    check_param(owner, "lr", lr, isinstance(lr, float) and lr > 0, "a float > 0")
    check_param(owner, "beta", beta, isinstance(beta, (int, float)) and beta > 0, "a float > 0")
    check_param(owner, "seed", seed, is_int(seed), "an int")
    ok_threads = num_threads is None or (is_int(num_threads) and num_threads >= 1)
    check_param(owner, "num_threads", num_threads, ok_threads, "None or an int >= 1")
    x_np, y_np = check_data(images, labels, n_classes, owner)
    settings = CVAESettings(x_np.shape[1], x_np.shape[2], n_classes, latent_dim, hidden)
    net = build_seeded(seed, lambda: _Net(settings))
    start = time.perf_counter()
    with torch_threads(num_threads):
        history = _fit(net, x_np, y_np, n_classes, epochs, batch_size, lr, beta, seed, progress)
    params = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "beta": float(beta),
        "seed": seed,
        "n_items": len(x_np),
    }
    return CVAE(
        settings,
        net,
        history=history,
        train_seconds=time.perf_counter() - start,
        train_params=params,
    )


def _fit(
    net: _Net,
    x_np: np.ndarray,
    y_np: np.ndarray,
    n_classes: int,
    epochs: int,
    batch_size: int,
    lr: float,
    beta: float,
    seed: int,
    progress: bool,
) -> tuple[float, ...]:
    """Adam over seeded shuffles; returns the mean loss of each epoch."""
    gen = seeded(seed)
    x = to_unit(x_np)
    y = one_hot(y_np, n_classes)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    history = []
    net.train()
    bar = _progress(epochs, progress)
    for _ in range(epochs):
        total = 0.0
        for idx in shuffled_batches(len(x), batch_size, gen):
            loss = net.neg_elbo(x[idx], y[idx], gen, beta).mean()
            adam_step(opt, loss)
            total += loss.item() * len(idx)
        history.append(total / len(x))
        bar.set_postfix(loss=f"{history[-1]:.2f}")
        bar.update(1)
    bar.close()
    net.eval()
    return tuple(history)


def _progress(epochs: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=epochs,
        desc="train cvae",
        unit="epoch",
        file=sys.stderr,
        disable=not enabled,
    )
