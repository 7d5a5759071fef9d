"""The interface every embedder implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gmvaluator.sources.base import Kind


@runtime_checkable
class Embedder(Protocol):
    """Maps a batch of items of one kind to a float32 (B, dim) array.

    ``name``, ``version`` and ``settings()`` identify the embedding exactly: two embedders with
    the same three give the same vectors, which is what caches and resumed runs rely on.

    An embedder may also split ``embed_batch`` into ``prepare_batch(items)`` (preprocessing
    only, changing no state) and ``embed_prepared(prepared) -> (B, dim)``, with
    ``embed_batch(items) == embed_prepared(prepare_batch(items))``; with ``read_ahead = True``
    the embedding loop then prepares the next batch in the background while the model runs
    (``embed.readahead``).
    """

    name: str
    version: str
    kind: Kind

    def settings(self) -> dict[str, Any]: ...

    def embed_batch(self, items: Sequence[Any]) -> np.ndarray: ...
