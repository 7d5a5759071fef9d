"""Saving and reopening the small torch reference generators: a state dict next to a JSON."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gmvaluator.errors import InputError
from gmvaluator.files import atomic_path, hash_file, read_json, write_json


def save_module(
    path: str | os.PathLike[str], stem: str, net: nn.Module, meta: dict[str, Any], overwrite: bool
) -> Path:
    """Write ``<stem>.pt`` (plain state dict) and ``<stem>.json`` (``meta`` plus the hash)."""
    folder = Path(path)
    weights, info = folder / f"{stem}.pt", folder / f"{stem}.json"
    existing = [str(p) for p in (weights, info) if p.exists()]
    if existing and not overwrite:
        raise InputError(f"{existing[0]} already exists; choose another folder or overwrite=True.")
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    with atomic_path(weights) as tmp:
        torch.save(state, tmp)
    write_json(info, {**meta, "weights_sha256": hash_file(weights)})
    return folder


def load_module(path: str | os.PathLike[str], stem: str, fmt: str) -> tuple[dict[str, Any], Any]:
    """The JSON and the state dict of a folder written by ``save_module``, hash-checked."""
    folder = Path(path)
    weights, info = folder / f"{stem}.pt", folder / f"{stem}.json"
    for p in (weights, info):
        if not p.is_file():
            raise InputError(f"{p} not found; give a folder the generator was saved to.")
    meta = read_json(info)
    if meta.get("format") != fmt:
        raise InputError(f"{info} has format {meta.get('format')!r}, expected {fmt!r}.")
    if hash_file(weights) != meta["weights_sha256"]:
        raise InputError(f"{weights} does not match the hash in {info}; save the model again.")
    return meta, torch.load(weights, weights_only=True, map_location="cpu")
