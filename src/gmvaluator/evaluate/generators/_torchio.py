"""Torch parts shared by the CVAE, GAN and DDPM reference generators: seeded training over
shuffled batches, and saving and reopening a network as a state dict next to a JSON.

Every random draw comes from a ``torch.Generator`` made from the seed, never from torch's
global random state, so a seeded run repeats exactly whatever else the process does.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gmvaluator.errors import InputError
from gmvaluator.files import atomic_path, hash_file, read_json, write_json

NetT = TypeVar("NetT", bound=nn.Module)


def to_unit(x: np.ndarray) -> torch.Tensor:
    """uint8 images as float32 rows of pixels in [0, 1]."""
    return torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0)


def one_hot(y: np.ndarray, n_classes: int) -> torch.Tensor:
    return F.one_hot(torch.from_numpy(y), n_classes).float()


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def build_seeded(seed: int, build: Callable[[], NetT]) -> NetT:
    """A network whose initial weights depend on ``seed`` alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` (None: unchanged), restored afterwards."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def shuffled_batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """The row indices of one epoch, shuffled by ``gen``, ``batch_size`` at a time."""
    order = torch.randperm(n, generator=gen)
    for lo in range(0, n, batch_size):
        yield order[lo : lo + batch_size]


def adam_step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def train_epochs(
    net: nn.Module,
    n: int,
    epochs: int,
    batch_size: int,
    gen: torch.Generator,
    num_threads: int | None,
    step: Callable[[torch.Tensor], None],
) -> float:
    """Call ``step`` on each shuffled batch of row indices for ``epochs`` epochs, with ``net``
    in training mode; returns the seconds it took."""
    t0 = time.perf_counter()
    net.train()
    with torch_threads(num_threads):
        for _ in range(epochs):
            for idx in shuffled_batches(n, batch_size, gen):
                step(idx)
    net.eval()
    return time.perf_counter() - t0


def save_module(
    path: str | os.PathLike[str], stem: str, net: nn.Module, meta: dict[str, Any], overwrite: bool
) -> Path:
    """Write ``<stem>.pt`` (plain state dict) and ``<stem>.json`` (``meta`` plus the hash)."""
    folder = Path(path)
    weights, info = folder / f"{stem}.pt", folder / f"{stem}.json"
    existing = [str(p) for p in (weights, info) if p.exists()]
    if existing and not overwrite:
        raise InputError(
            f"{existing[0]} already exists; choose another folder or pass overwrite=True."
        )
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    with atomic_path(weights) as tmp:
        torch.save(state, tmp)
    write_json(info, {**meta, "weights_sha256": hash_file(weights)})
    return folder


def load_module(
    path: str | os.PathLike[str], stem: str, fmt: str, owner: str
) -> tuple[dict[str, Any], Any]:
    """The JSON and the state dict of a folder written by ``save_module``, hash-checked;
    ``owner`` (a class name) is the one whose ``save`` wrote it."""
    folder = Path(path)
    weights, info = folder / f"{stem}.pt", folder / f"{stem}.json"
    for p in (weights, info):
        if not p.is_file():
            raise InputError(f"{p} not found; give a folder written by {owner}.save.")
    meta = read_json(info)
    if meta.get("format") != fmt:
        raise InputError(
            f"{info} has format {meta.get('format')!r}, expected {fmt!r}; "
            "retrain and save the model with this version of gmvaluator."
        )
    if hash_file(weights) != meta["weights_sha256"]:
        raise InputError(
            f"{weights} does not match the hash in {info}; the folder was modified "
            "after saving. Save the model again."
        )
    return meta, torch.load(weights, weights_only=True, map_location="cpu")


def save_generator(
    path: str | os.PathLike[str], stem: str, fmt: str, model: Any, net: nn.Module, overwrite: bool
) -> Path:
    """``save_module`` for a model with ``settings`` (a dataclass) and ``train_params``."""
    meta = {"format": fmt, "settings": asdict(model.settings), "train_params": model.train_params}
    return save_module(path, stem, net, meta, overwrite)


def load_generator(
    path: str | os.PathLike[str], stem: str, fmt: str, cls: Any, settings_type: Any, net_type: Any
) -> Any:
    """``cls(settings, net, train_params)`` from a folder written by ``save_generator``."""
    meta, state = load_module(path, stem, fmt, cls.__name__)
    settings = settings_type(**meta["settings"])
    net = net_type(settings)
    net.load_state_dict(state)
    return cls(settings, net, meta["train_params"])
