"""The identity embedder, for sources that already hold embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gmvaluator.errors import InputError
from gmvaluator.sources.base import Kind


class PrecomputedEmbedder:
    """Returns the given vectors as float32, unchanged (no normalisation)."""

    name = "precomputed"
    cacheable = False  # nothing to save: the vectors are the input
    version = "1"
    kind: Kind = "embedding"

    def settings(self) -> dict[str, Any]:
        return {}

    def embed_batch(self, items: Sequence[Any]) -> np.ndarray:
        try:
            a = np.asarray(items, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"precomputed embeddings must be numbers of one length per row: {exc}. "
                "Store them as an (N, D) float array."
            ) from exc
        if a.ndim != 2 or a.shape[1] == 0:
            raise InputError(
                f"precomputed embeddings must form an (N, D) array with D >= 1; got shape "
                f"{a.shape}. Store one vector per row."
            )
        return np.ascontiguousarray(a)
