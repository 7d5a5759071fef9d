"""What every engine provides: embedding a source and the top-k search of a valuation.

An engine runs the two expensive stages of a run; the run pipeline holds one (``local`` by
default) and calls only this protocol, so which engine it holds never changes its code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from gmvaluator.config import ValueConfig
from gmvaluator.sources import Dataset

if TYPE_CHECKING:
    from gmvaluator.core.valuator import Valuator

#: The run folder's folder of embedding shards, one sub-folder per role (``train``,
#: ``generated``, ``generated-append-001``, ...); ``gmvaluator.run.folder`` lists it.
EMBEDDINGS = "embeddings"


@dataclass
class Embedded:
    """A source with its embeddings and the hash of its content."""

    dataset: Dataset
    vectors: np.ndarray
    source_hash: str
    seconds: float
    reused: bool
    cache: dict[str, Any] | None = None  # embedding-cache folder, items read from it, added


@runtime_checkable
class Engine(Protocol):
    """Embeds sources and searches a fitted valuator's index (see the module docstring)."""

    name: str

    def embed(
        self,
        spec: str,
        role: str,
        cfg: ValueConfig,
        run_dir: Path | None,
        progress: bool = True,
        cache: str | Path | None = None,
    ) -> Embedded:
        """Read source ``spec`` and embed it into ``run_dir/embeddings/<role>/`` (reusing
        finished shards); ``cache`` is an embedding-cache folder shared by runs."""
        ...

    def search(
        self, valuator: Valuator, prepared_queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (distances, training rows) of prepared queries after the exact re-rank: the
        ``search`` hook of ``Valuator.value``."""
        ...


def embeddings_folder(run_dir: Path, role: str) -> Path:
    """Where an engine writes the embedding shards of ``role`` in run folder ``run_dir``."""
    return run_dir / EMBEDDINGS / role
