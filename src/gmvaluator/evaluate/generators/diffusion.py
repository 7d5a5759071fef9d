"""A small class-conditional diffusion model (DDPM with an MLP denoiser), the diffusion family.

Pixels scaled to [-1, 1]; ``steps`` noise levels on a linear beta schedule; the denoiser sees
the noisy image, a sinusoidal embedding of the step and the one-hot class. ``loss`` is the
per-image denoising loss averaged over seeded steps and noises (the usual stand-in for the
likelihood in data attribution of diffusion models).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import gmvaluator.evaluate.generators._torchio as tio
from gmvaluator.errors import check_param
from gmvaluator.evaluate.generators._checks import check_data, check_sample, is_int, needs_labels
from gmvaluator.modelaware.model import Examples, GradientModel

FORMAT = "gmvaluator.diffusion/1"
#: How the gradient model's noise draws pick their steps (``CDiffusion.gradient_model``).
TIMESTEPS = ("stratified", "random")
_T_EMB = 32


@dataclass(frozen=True)
class DiffusionSettings:
    height: int
    width: int
    n_classes: int
    steps: int = 100
    hidden: int = 512


class _Denoiser(nn.Module):
    def __init__(self, s: DiffusionSettings) -> None:
        super().__init__()
        d = s.height * s.width
        self.net = nn.Sequential(
            nn.Linear(d + _T_EMB + s.n_classes, s.hidden),
            nn.SiLU(),
            nn.Linear(s.hidden, s.hidden),
            nn.SiLU(),
            nn.Linear(s.hidden, s.hidden),
            nn.SiLU(),
            nn.Linear(s.hidden, d),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        half = _T_EMB // 2
        freq = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half)
        arg = t.float()[:, None] * freq[None]
        emb = torch.cat([torch.sin(arg), torch.cos(arg)], 1)
        return self.net(torch.cat([x, emb, y], 1))


def _schedule(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    betas = torch.linspace(1e-4, min(0.999, 0.02 * 1000 / steps), steps, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, 0)
    return betas.float(), alpha_bar.float()


class CDiffusion:
    """A trained class-conditional DDPM; build with ``train_diffusion`` or ``CDiffusion.load``."""

    def __init__(
        self, settings: DiffusionSettings, net: _Denoiser, train_params: dict[str, Any]
    ) -> None:
        self.settings = settings
        self.net = net.eval()
        self.train_params = train_params
        self.betas, self.alpha_bar = _schedule(settings.steps)

    def sample(self, labels: np.ndarray, seed: int = 0) -> np.ndarray:
        """Ancestral sampling, one uint8 (H, W) image per label; seeded."""
        s = self.settings
        y = check_sample(labels, seed, s.n_classes, "CDiffusion.sample")
        gen = tio.seeded(seed)
        oh = tio.one_hot(y, s.n_classes)
        x = torch.randn((len(y), s.height * s.width), generator=gen)
        with torch.inference_mode():
            for t in range(s.steps - 1, -1, -1):
                tt = torch.full((len(y),), t)
                eps = self.net(x, tt, oh)
                beta, ab = self.betas[t], self.alpha_bar[t]
                x = (x - beta / torch.sqrt(1 - ab) * eps) / torch.sqrt(1 - beta)
                if t > 0:
                    x = x + torch.sqrt(beta) * torch.randn(x.shape, generator=gen)
        px = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
        return px.reshape(len(y), s.height, s.width)

    def loss(
        self, images: np.ndarray, labels: np.ndarray, *, n_draws: int | None = None, seed: int = 0
    ) -> np.ndarray:
        """Per-image denoising loss (summed squared noise error), averaged over seeded draws.

        Draw d of D takes a step from the d-th of D equal slices of the schedule, so the draws
        cover the noise levels evenly: with D a multiple of ``steps`` (default: ``steps``, each
        step once) the average is exact over the steps and random only in the noise."""
        s = self.settings
        n_draws = s.steps if n_draws is None else n_draws
        check_param("CDiffusion.loss", "n_draws", n_draws, is_int(n_draws) and n_draws >= 1,
                    "an int >= 1")  # fmt: skip
        x_np, y = check_data(images, labels, s.n_classes, "CDiffusion.loss", (s.height, s.width))
        gen = tio.seeded(seed)
        x0 = tio.to_unit(x_np) * 2 - 1
        oh = tio.one_hot(y, s.n_classes)
        total = torch.zeros(len(x0), dtype=torch.float64)
        with torch.inference_mode():
            for draw in range(n_draws):
                t = _stratified_steps(len(x0), gen, draw, n_draws, s.steps)
                err = _denoise_error(self.net, x0, t, oh, self.alpha_bar, gen)
                total += err.double()
        return (total / n_draws).numpy()

    def gradient_model(self, timesteps: str = "stratified") -> GradientModel:
        """The model-aware re-score's view of this DDPM: the denoising loss at a step and a
        noise (its noise draws) as ``loss``; D-TRAK's output functions ``square`` (the squared
        norm of the predicted noise) and ``mean`` (its mean) as alternatives for the generated
        samples. Items are greyscale images of the training size with class labels.

        ``timesteps``: ``stratified`` (draw d of D takes a step drawn uniformly from the d-th
        of D equal slices of the schedule, so the draws cover every noise level evenly) or
        ``random`` (each draw a uniform step)."""
        check_param("CDiffusion.gradient_model", "timesteps", timesteps,
                    timesteps in TIMESTEPS, f"one of {', '.join(TIMESTEPS)}")  # fmt: skip
        s = self.settings
        alpha_bar = self.alpha_bar

        def prepare(examples: Examples) -> dict[str, torch.Tensor]:
            x = examples.images("L")
            y = check_data(x, needs_labels(examples, "the diffusion model"), s.n_classes,
                           "CDiffusion", (s.height, s.width))[1]  # fmt: skip
            return {"x0": tio.to_unit(x) * 2 - 1, "y": tio.one_hot(y, s.n_classes)}

        def noise(
            n: int, gen: torch.Generator, draw: int = 0, draws: int = 1
        ) -> dict[str, torch.Tensor]:
            if timesteps == "stratified":
                t = _stratified_steps(n, gen, draw, draws, s.steps)
            else:
                t = torch.randint(0, s.steps, (n,), generator=gen)
            return {"t": t, "noise": torch.randn((n, s.height * s.width), generator=gen)}

        def predicted(net: _Denoiser, b: Mapping[str, torch.Tensor]) -> torch.Tensor:
            ab = alpha_bar[b["t"]][:, None]
            xt = torch.sqrt(ab) * b["x0"] + torch.sqrt(1 - ab) * b["noise"]
            out: torch.Tensor = net(xt, b["t"], b["y"])
            return out

        def loss(net: _Denoiser, b: Mapping[str, torch.Tensor]) -> torch.Tensor:
            return ((predicted(net, b) - b["noise"]) ** 2).sum(1)

        def square(net: _Denoiser, b: Mapping[str, torch.Tensor]) -> torch.Tensor:
            return (predicted(net, b) ** 2).sum(1)

        def mean(net: _Denoiser, b: Mapping[str, torch.Tensor]) -> torch.Tensor:
            return predicted(net, b).mean(1)

        outputs = {"square": square, "mean": mean}
        name = "diffusion" if timesteps == "random" else f"diffusion/{timesteps}"
        return GradientModel(self.net, loss, prepare, noise, outputs, name=name)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        return tio.save_generator(path, "diffusion", FORMAT, self, self.net, overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CDiffusion:
        model: CDiffusion = tio.load_generator(
            path, "diffusion", FORMAT, cls, DiffusionSettings, _Denoiser
        )
        return model


def _stratified_steps(
    n: int, gen: torch.Generator, draw: int, draws: int, steps: int
) -> torch.Tensor:
    """``n`` steps drawn uniformly from the ``draw``-th of ``draws`` equal slices of
    0..steps-1 (each slice's share of every step is its overlap with it)."""
    u = torch.rand((n,), generator=gen, dtype=torch.float64)
    return ((draw + u) * steps / draws).long().clamp(0, steps - 1)


def _denoise_error(
    net: _Denoiser,
    x0: torch.Tensor,
    t: torch.Tensor,
    y: torch.Tensor,
    alpha_bar: torch.Tensor,
    gen: torch.Generator,
) -> torch.Tensor:
    noise = torch.randn(x0.shape, generator=gen)
    ab = alpha_bar[t][:, None]
    xt = torch.sqrt(ab) * x0 + torch.sqrt(1 - ab) * noise
    return ((net(xt, t, y) - noise) ** 2).sum(1)


def train_diffusion(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    n_classes: int,
    epochs: int = 200,
    steps: int = 100,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    num_threads: int | None = 1,
) -> CDiffusion:
    """Train a conditional DDPM on uint8 (N, H, W) images with int labels; seeded."""
    for name, value in (("epochs", epochs), ("steps", steps), ("batch_size", batch_size)):
        check_param("train_diffusion", name, value, is_int(value) and value >= 1, "an int >= 1")
    x_np, y_np = check_data(images, labels, n_classes, "train_diffusion")
    settings = DiffusionSettings(x_np.shape[1], x_np.shape[2], n_classes, steps)
    net = tio.build_seeded(seed, lambda: _Denoiser(settings))
    _, alpha_bar = _schedule(steps)
    gen = tio.seeded(seed)
    x0 = tio.to_unit(x_np) * 2 - 1
    y = tio.one_hot(y_np, n_classes)
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def step(idx: torch.Tensor) -> None:
        t = torch.randint(0, steps, (len(idx),), generator=gen)
        tio.adam_step(opt, _denoise_error(net, x0[idx], t, y[idx], alpha_bar, gen).mean())

    seconds = tio.train_epochs(net, len(x0), epochs, batch_size, gen, num_threads, step)
    params = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
              "n_items": len(x_np), "train_seconds": seconds}  # fmt: skip
    return CDiffusion(settings, net, params)
