"""A small class-conditional GAN (MLP generator and discriminator), the GAN reference family.

Non-saturating GAN loss, Adam; pixels scaled to [0, 1] with a sigmoid output. A GAN has no
likelihood, so it has no ``loss``: deletion and LDS use the CVAE, GMM or diffusion families. Its
``gradient_model`` differentiates the discriminator's loss on real data instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import gmvaluator.evaluate.generators._torchio as tio
from gmvaluator.errors import check_param
from gmvaluator.evaluate.generators._checks import check_data, check_sample, is_int, needs_labels
from gmvaluator.modelaware.model import Examples, GradientModel

FORMAT = "gmvaluator.gan/1"


@dataclass(frozen=True)
class GANSettings:
    height: int
    width: int
    n_classes: int
    latent_dim: int = 32
    hidden: int = 256


class _Nets(nn.Module):
    def __init__(self, s: GANSettings) -> None:
        super().__init__()
        d = s.height * s.width
        self.gen = nn.Sequential(
            nn.Linear(s.latent_dim + s.n_classes, s.hidden),
            nn.ReLU(),
            nn.Linear(s.hidden, s.hidden),
            nn.ReLU(),
            nn.Linear(s.hidden, d),
        )
        self.disc = nn.Sequential(
            nn.Linear(d + s.n_classes, s.hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(s.hidden, s.hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(s.hidden, 1),
        )


class CGAN:
    """A trained class-conditional GAN; build with ``train_gan`` or ``CGAN.load``."""

    def __init__(self, settings: GANSettings, nets: _Nets, train_params: dict[str, Any]) -> None:
        self.settings = settings
        self.nets = nets.eval()
        self.train_params = train_params

    def sample(self, labels: np.ndarray, seed: int = 0) -> np.ndarray:
        """One uint8 (H, W) image per label; the same labels and seed give the same images."""
        s = self.settings
        y = check_sample(labels, seed, s.n_classes, "CGAN.sample")
        z = torch.randn((len(y), s.latent_dim), generator=tio.seeded(seed))
        with torch.inference_mode():
            p = torch.sigmoid(self.nets.gen(torch.cat([z, tio.one_hot(y, s.n_classes)], 1)))
        px = (p * 255).round().to(torch.uint8).numpy()
        return px.reshape(len(y), s.height, s.width)

    def gradient_model(self) -> GradientModel:
        """The model-aware re-score's view of this GAN: the discriminator, and its loss on an
        item taken as real, -log sigmoid(D(x, y)) (the term each training item added to its
        training). Items are greyscale images of the training size with class labels."""
        s = self.settings

        def prepare(examples: Examples) -> dict[str, torch.Tensor]:
            x = examples.images("L")
            y = check_data(x, needs_labels(examples, "the GAN"), s.n_classes, "CGAN",
                           (s.height, s.width))[1]  # fmt: skip
            return {"x": tio.to_unit(x), "y": tio.one_hot(y, s.n_classes)}

        def loss(disc: nn.Module, b: Mapping[str, torch.Tensor]) -> torch.Tensor:
            return F.softplus(-disc(torch.cat([b["x"], b["y"]], 1))[:, 0])

        return GradientModel(self.nets.disc, loss, prepare, name="gan-discriminator")

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        return tio.save_generator(path, "gan", FORMAT, self, self.nets, overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CGAN:
        model: CGAN = tio.load_generator(path, "gan", FORMAT, cls, GANSettings, _Nets)
        return model


def train_gan(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    n_classes: int,
    epochs: int = 300,
    batch_size: int = 64,
    lr: float = 2e-4,
    seed: int = 0,
    num_threads: int | None = 1,
) -> CGAN:
    """Train a conditional GAN on uint8 (N, H, W) images with int labels; seeded.

    It needs steps more than epochs: on the digits, 1,400 steps of 128 left the samples
    independent of their label (C1 at chance), 8,400 steps of 64 (300 epochs) gave samples
    whose nearest real digit has their label 96 % of the time.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("n_classes", n_classes)):
        check_param("train_gan", name, value, is_int(value) and value >= 1, "an int >= 1")
    x_np, y_np = check_data(images, labels, n_classes, "train_gan")
    settings = GANSettings(x_np.shape[1], x_np.shape[2], n_classes)
    nets = tio.build_seeded(seed, lambda: _Nets(settings))
    gen = tio.seeded(seed)
    x = tio.to_unit(x_np) * 2 - 1
    y = tio.one_hot(y_np, n_classes)
    opt_g = torch.optim.Adam(nets.gen.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(nets.disc.parameters(), lr=lr, betas=(0.5, 0.999))

    def step(idx: torch.Tensor) -> None:
        _gan_step(nets, x[idx], y[idx], settings.latent_dim, gen, opt_g, opt_d)

    seconds = tio.train_epochs(nets, len(x), epochs, batch_size, gen, num_threads, step)
    params = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
              "n_items": len(x_np), "train_seconds": seconds}  # fmt: skip
    return CGAN(settings, nets, params)


def _gan_step(
    nets: _Nets,
    xb: torch.Tensor,
    yb: torch.Tensor,
    latent: int,
    gen: torch.Generator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
) -> None:
    z = torch.randn((len(xb), latent), generator=gen)
    fake = torch.sigmoid(nets.gen(torch.cat([z, yb], 1))) * 2 - 1
    real_logit = nets.disc(torch.cat([xb, yb], 1))
    fake_logit = nets.disc(torch.cat([fake.detach(), yb], 1))
    tio.adam_step(opt_d, F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean())
    tio.adam_step(opt_g, F.softplus(-nets.disc(torch.cat([fake, yb], 1))).mean())
