"""``ValuationResult``: values together with the matches and settings that produced them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gmvaluator.errors import InputError
from gmvaluator.files import atomic_path, read_json, write_json


@dataclass(frozen=True)
class ValuationResult:
    """Per-training-item values and the per-generated-sample matches behind them.

    ``distances``, ``indices`` and ``credits`` are (m, k): for generated sample j, the training
    rows of its top-k matches, their distances and the credit each received (rows sum to
    ``quality[j]``). ``values`` (n,) is the column sum of credits per training item.
    """

    train_ids: np.ndarray
    generated_ids: np.ndarray
    values: np.ndarray
    n_matches: np.ndarray
    distances: np.ndarray
    indices: np.ndarray
    credits: np.ndarray
    quality: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)
    recall: float = 1.0
    recall_queries: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    #: (m, k) bool, True where a match is a near copy of its training item (None: not checked)
    near_copy: np.ndarray | None = None

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    @property
    def n_matched(self) -> int:
        """How many training items received any credit at all."""
        return int(np.count_nonzero(self.n_matches))

    def ranks(self) -> np.ndarray:
        """1 for the most valuable item; ties keep training order."""
        order = np.lexsort((np.arange(len(self.values)), -self.values))
        ranks = np.empty(len(order), dtype=np.int64)
        ranks[order] = np.arange(1, len(order) + 1)
        return ranks

    def values_frame(self, **columns: Any) -> pd.DataFrame:
        """One row per training item: train_id, value, rank, n_matches, plus ``columns``."""
        df = pd.DataFrame(
            {
                "train_id": self.train_ids.astype(str),
                "value": self.values.astype(np.float64),
                "rank": self.ranks(),
                "n_matches": self.n_matches.astype(np.int64),
            }
        )
        for name, col in columns.items():
            if col is not None:
                df[name] = np.asarray(col)
        return df

    def attributions_frame(self) -> pd.DataFrame:
        """One row per generated sample and match, in rank order."""
        m, k = self.indices.shape
        df = pd.DataFrame(
            {
                "generated_id": np.repeat(self.generated_ids.astype(str), k),
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), m),
                "train_id": self.train_ids.astype(str)[self.indices.ravel()],
                "train_row": self.indices.ravel().astype(np.int64),
                "distance": self.distances.ravel().astype(np.float64),
                "credit": self.credits.ravel().astype(np.float64),
                "quality": np.repeat(self.quality.astype(np.float64), k),
            }
        )
        if self.near_copy is not None:
            df["near_copy"] = np.asarray(self.near_copy, dtype=bool).ravel()
        return df

    def top(self, n: int = 10) -> pd.DataFrame:
        df = self.values_frame()
        return df.sort_values("rank").head(n).reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        return {
            "n_train": len(self.train_ids),
            "n_generated": len(self.generated_ids),
            "k": self.k,
            "n_matched": self.n_matched,
            "total_credit": float(self.values.sum()),
            "recall_at_k": self.recall,
            "recall_queries": self.recall_queries,
        }

    def save(self, path: str | Path, **columns: Any) -> Path:
        """Write ``values.parquet``, ``attributions.parquet`` and ``result.json`` to a folder."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_parquet(self.values_frame(**columns), path / "values.parquet")
        write_parquet(self.attributions_frame(), path / "attributions.parquet")
        meta = {
            "config": self.config,
            "recall": self.recall,
            "recall_queries": self.recall_queries,
            "timings": self.timings,
            **self.summary(),
        }
        write_json(path / "result.json", meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ValuationResult:
        """Read a folder written by ``save`` back into an equal result."""
        path = Path(path)
        for name in ("values.parquet", "attributions.parquet", "result.json"):
            if not (path / name).is_file():
                raise InputError(f"{path} has no {name}; it is not a finished valuation run.")
        meta = read_json(path / "result.json")
        vals = pd.read_parquet(path / "values.parquet")
        att = pd.read_parquet(path / "attributions.parquet")
        k = int(meta["k"])
        m = len(att) // k

        def grid(col: str) -> np.ndarray:
            return att[col].to_numpy().reshape(m, k)

        return cls(
            train_ids=vals["train_id"].to_numpy().astype(str),
            generated_ids=att["generated_id"].to_numpy()[::k].astype(str),
            values=vals["value"].to_numpy(),
            n_matches=vals["n_matches"].to_numpy(),
            distances=grid("distance"),
            indices=grid("train_row"),
            credits=grid("credit"),
            quality=att["quality"].to_numpy()[::k],
            config=meta["config"],
            recall=meta["recall"],
            recall_queries=meta["recall_queries"],
            timings=meta["timings"],
            near_copy=grid("near_copy").astype(bool) if "near_copy" in att else None,
        )


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Atomic, deterministic Parquet: same frame, same bytes."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata(None)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True)
