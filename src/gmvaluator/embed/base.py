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
    """

    name: str
    version: str
    kind: Kind

    def settings(self) -> dict[str, Any]: ...

    def embed_batch(self, items: Sequence[Any]) -> np.ndarray: ...
