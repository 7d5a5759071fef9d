"""Embedders by name, the default one per kind of source, and the kind check."""

from __future__ import annotations

import inspect
from typing import Any

from gmvaluator.embed.base import Embedder
from gmvaluator.embed.efficientnet import EfficientNetLite0Embedder
from gmvaluator.embed.minilm import MiniLMEmbedder
from gmvaluator.embed.pixels import PixelEmbedder
from gmvaluator.embed.precomputed import PrecomputedEmbedder
from gmvaluator.embed.sscd import SSCDDistilledEmbedder, SSCDEmbedder
from gmvaluator.errors import InputError

# The classes import nothing heavy; torch and sentence-transformers load on first embed_batch.
_EMBEDDERS: dict[str, Any] = {
    "efficientnet-lite0": EfficientNetLite0Embedder,
    "minilm": MiniLMEmbedder,
    "pixels": PixelEmbedder,
    "precomputed": PrecomputedEmbedder,
    "sscd": SSCDEmbedder,
    "sscd-distilled": SSCDDistilledEmbedder,
}
_HUB_PREFIXES = ("hf", "timm", "open_clip")
_DEFAULTS = {"image": "efficientnet-lite0", "text": "minilm", "embedding": "precomputed"}


def known_embedders(kind: str | None = None) -> list[str]:
    """Names accepted by ``get_embedder``, optionally only those for one kind of source."""
    return sorted(n for n, c in _EMBEDDERS.items() if kind is None or c.kind == kind)


def get_embedder(name: str, **options: Any) -> Embedder:
    """A new embedder by name; ``options`` are its constructor's keyword arguments.

    ``hf:PATH``, ``timm:NAME=WEIGHTS`` and ``open_clip:NAME=WEIGHTS`` load local models
    (``gmvaluator.embed.hub``).
    """
    prefix, sep, arg = name.partition(":")
    if sep and prefix in _HUB_PREFIXES:
        from gmvaluator.embed.hub import LOADERS

        hub: Embedder = LOADERS[prefix](arg, **options)
        return hub
    cls = _EMBEDDERS.get(name)
    if cls is None:
        raise InputError(
            f"unknown embedder {name!r}. Choose one of: {', '.join(known_embedders())}, or "
            "a local model: hf:PATH, timm:NAME=WEIGHTS, open_clip:NAME=WEIGHTS."
        )
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        allowed = ", ".join(accepted) if accepted else "none"
        raise InputError(
            f"embedder {name!r} has no option {', '.join(map(repr, unknown))}. "
            f"Its options are: {allowed}."
        )
    embedder: Embedder = cls(**options)
    return embedder


def run_embedder(
    name: str, *, runtime: str = "auto", device: str = "auto", threads: int | None = None
) -> Embedder:
    """``get_embedder(name)`` with a run's ``runtime``, ``device`` and ``threads``, each given
    to the built-in embedders whose constructor takes it (the others have no such choice).
    Asking a specific runtime or device of an embedder that has none is an error."""
    prefix, sep, _ = name.partition(":")
    cls = None if sep and prefix in _HUB_PREFIXES else _EMBEDDERS.get(name)
    accepted = set() if cls is None else set(inspect.signature(cls).parameters)
    wanted = {"runtime": runtime, "device": device, "threads": threads}
    # any embedder runs on the CPU; only a runtime or a GPU it cannot honour is an error
    for option, fine in (("runtime", ("auto",)), ("device", ("auto", "cpu"))):
        if cls is not None and option not in accepted and wanted[option] not in fine:
            raise InputError(
                f"embedder {name!r} has no {option} to choose; --{option} {wanted[option]} "
                f"applies to: {', '.join(_taking(option))}. Leave --{option} at auto."
            )
    return get_embedder(name, **{k: v for k, v in wanted.items() if k in accepted})


def _taking(option: str) -> list[str]:
    return sorted(n for n, c in _EMBEDDERS.items() if option in inspect.signature(c).parameters)


def default_embedder(kind: str) -> str:
    """The name of the embedder used for a kind of source when none is chosen."""
    if kind not in _DEFAULTS:
        raise InputError(
            f"unknown source kind {kind!r}. Choose one of: {', '.join(sorted(_DEFAULTS))}."
        )
    return _DEFAULTS[kind]


def check_kind(embedder: Embedder, kind: str, source: str) -> None:
    """Raise InputError when ``embedder`` cannot embed the items of a source of ``kind``."""
    if embedder.kind == kind:
        return
    fits = ", ".join(known_embedders(kind)) or "none"
    raise InputError(
        f"embedder {embedder.name!r} embeds {embedder.kind} items, but source {source!r} holds "
        f"{kind} items. Use an embedder for {kind} items: {fits} "
        f"(default {default_embedder(kind)!r})."
    )
