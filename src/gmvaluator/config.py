"""Settings of a valuation run: defaults < TOML file < command-line flags."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from gmvaluator.errors import InputError


@dataclass(frozen=True)
class ValueConfig:
    """Everything that decides the numbers a valuation run writes.

    ``embedder`` None picks the default for the source kind (efficientnet-lite0 for images,
    minilm for text, precomputed for embeddings). Index settings left None are resolved by
    ``gmvaluator.search.index.resolve_params`` and the resolved values are recorded in the run.
    ``rerank`` picks the distance d_ij (``gmvaluator.core.rerank``); ``quality_norm`` how quality
    scores become q_j (``gmvaluator.quality.normalize``).
    """

    embedder: str | None = None
    batch_size: int = 64
    k: int = 10
    index: str = "auto"
    metric: str = "cosine"
    temperature: float = 1.0
    m: int | None = None
    nbits: int | None = None
    nlist: int | None = None
    nprobe: int | None = None
    n_candidates: int | None = None
    recall_sample: int = 1000
    target_recall: float = 0.99
    seed: int = 0
    text_column: str | None = None
    shard_size: int = 4096
    #: How embedding shards are stored: float32, or float16 for half the disk and page cache.
    embedding_dtype: str = "float32"
    rerank: str = "exact"
    quality_norm: str = "raw"

    def valuator_params(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "index": self.index,
            "metric": self.metric,
            "temperature": self.temperature,
            "m": self.m,
            "nbits": self.nbits,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "n_candidates": self.n_candidates,
            "recall_sample": self.recall_sample,
            "target_recall": self.target_recall,
            "random_state": self.seed,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_config(path: str | Path | None = None, **flags: Any) -> ValueConfig:
    """Defaults, updated by the ``[value]`` table of a TOML file, then by non-None flags."""
    cfg = ValueConfig()
    if path is not None:
        cfg = replace(cfg, **_read_toml(Path(path)))
    given = {key: v for key, v in flags.items() if v is not None}
    unknown = sorted(set(given) - {f.name for f in fields(ValueConfig)})
    if unknown:
        raise InputError(f"unknown settings {unknown}.")
    return replace(cfg, **given)


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"config file {path} does not exist. Check the --config path.")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"config file {path} is not valid TOML: {exc}.") from exc
    table = data.get("value", data)
    known = {f.name: f for f in fields(ValueConfig)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise InputError(
            f"config file {path} has unknown keys {unknown}; known keys are {sorted(known)}."
        )
    return dict(table)


def diff_settings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two settings dictionaries."""
    return sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))
