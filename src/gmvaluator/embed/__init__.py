"""Embedding stage: turns the items of a Dataset into float32 vectors.

Public API: ``get_embedder(name, **options)``, ``default_embedder(kind)``,
``embed_dataset(ds, embedder)``, ``embedder_fingerprint(embedder)``, and the embedder classes.
Importing this package stays light: torch and sentence-transformers load on first use.
"""

from gmvaluator.embed.base import Embedder
from gmvaluator.embed.dataset import embed_dataset, embedder_fingerprint
from gmvaluator.embed.efficientnet import EfficientNetLite0Embedder
from gmvaluator.embed.minilm import MiniLMEmbedder
from gmvaluator.embed.pixels import PixelEmbedder
from gmvaluator.embed.precomputed import PrecomputedEmbedder
from gmvaluator.embed.registry import (
    check_kind,
    default_embedder,
    get_embedder,
    known_embedders,
)

__all__ = [
    "EfficientNetLite0Embedder",
    "Embedder",
    "MiniLMEmbedder",
    "PixelEmbedder",
    "PrecomputedEmbedder",
    "check_kind",
    "default_embedder",
    "embed_dataset",
    "embedder_fingerprint",
    "get_embedder",
    "known_embedders",
]
