"""``ValuationResult``: values together with the matches and settings that produced them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gmvaluator.core import density as dn
from gmvaluator.errors import InputError
from gmvaluator.files import atomic_path, read_json, write_json


@dataclass(frozen=True)
class ValuationResult:
    """Per-training-item values and the per-generated-sample matches behind them.

    ``distances``, ``indices`` and ``credits`` are (m, k): for generated sample j, the training
    rows of its top-k matches, their distances and the credit each received (rows sum to
    ``quality[j] * share[j]``). ``values`` (n,) is the column sum of credits per training item.

    Under the calibrated credit rule (``gmvaluator.core.credit``) ``share`` (m,) holds each
    generated sample's attributable share a_j, ``neighbours`` each training item's nearest
    generated samples and ``density`` (n,) the density they give (``gmvaluator.core.density``),
    by which ``ranks`` orders items together with their value. Under the paper's rule all three
    are None and ``ranks`` orders by value alone.
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
    share: np.ndarray | None = None
    neighbours: dn.GeneratedNeighbours | None = None
    density: np.ndarray | None = None
    #: (m, k) signed attribution scores behind the credits of a model-aware re-score (NaN where
    #: a match was not scored); None for the training-free rules
    scores: np.ndarray | None = None

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    @property
    def n_matched(self) -> int:
        """How many training items received any credit at all."""
        return int(np.count_nonzero(self.n_matches))

    @property
    def unattributed(self) -> np.ndarray:
        """(m,) credit each generated sample did not hand out: q_j (1 - a_j)."""
        quality = np.asarray(self.quality, dtype=np.float64)
        if self.scores is not None:  # a re-scored sample may hand out less than its share
            return np.maximum(quality - self.credits.sum(axis=1), 0.0)
        share = np.ones(len(self.quality)) if self.share is None else self.share
        return quality * (1.0 - share)

    def rank_scores(self) -> np.ndarray:
        """What ``ranks`` orders by: the blend of value and density, or the value alone."""
        if self.density is None:
            return np.asarray(self.values, dtype=np.float64)
        return dn.rank_score(self.values, self.density)

    def ranks(self) -> np.ndarray:
        """1 for the first item by ``rank_scores``; ties keep training order."""
        return dn.ranks(self.rank_scores())

    def with_density(self) -> ValuationResult:
        """This result with ``density`` computed from ``neighbours`` (weights q_j a_j, the
        bandwidth of the credit rule in ``config``)."""
        if self.neighbours is None or self.share is None:
            return self
        h = float(self.config["credit"]["bandwidth"])
        weights = np.asarray(self.quality, dtype=np.float64) * self.share
        return replace(self, density=dn.density(self.neighbours, weights, h))

    def extended(self, new: ValuationResult) -> ValuationResult:
        """The result over the generated samples of both, as if valued together."""
        if not np.array_equal(self.train_ids, new.train_ids):
            raise InputError("the new batch was valued against a different training set.")
        n_q = self.recall_queries + new.recall_queries
        recall = (self.recall * self.recall_queries + new.recall * new.recall_queries) / max(n_q, 1)
        both = replace(
            self,
            generated_ids=np.concatenate([self.generated_ids, new.generated_ids]),
            values=self.values + new.values,
            n_matches=self.n_matches + new.n_matches,
            distances=np.vstack([self.distances, new.distances]),
            indices=np.vstack([self.indices, new.indices]),
            credits=np.vstack([self.credits, new.credits]),
            quality=np.concatenate([self.quality, new.quality]),
            recall=float(recall),
            recall_queries=n_q,
            timings={key: self.timings.get(key, 0.0) + v for key, v in new.timings.items()},
            near_copy=_stack(self.near_copy, new.near_copy),
            share=_stack(self.share, new.share),
            scores=_stack(self.scores, new.scores),
            neighbours=None,
            density=None,
        )
        if self.neighbours is None or new.neighbours is None:
            return both
        offset = len(self.generated_ids)
        merged = dn.merge(self.neighbours, new.neighbours.shifted(offset))
        return replace(both, neighbours=merged).with_density()

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
        if self.density is not None:
            df["density"] = self.density.astype(np.float64)
            df["rank_score"] = self.rank_scores()
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
        if self.scores is not None:
            df["score"] = np.asarray(self.scores, dtype=np.float64).ravel()
        return df

    def generated_frame(self) -> pd.DataFrame:
        """One row per generated sample: its quality, attributable share, the credit it handed
        out and the credit it left unattributed."""
        share = np.ones(len(self.quality)) if self.share is None else self.share
        return pd.DataFrame(
            {
                "generated_id": self.generated_ids.astype(str),
                "quality": self.quality.astype(np.float64),
                "share": share.astype(np.float64),
                "credited": self.credits.sum(axis=1).astype(np.float64),
                "unattributed": self.unattributed,
            }
        )

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
            "unattributed": float(self.unattributed.sum()),
            "recall_at_k": self.recall,
            "recall_queries": self.recall_queries,
        }

    def credit_summary(self) -> dict[str, Any]:
        """The credit rule with its constants, and what it left unattributed."""
        q = float(np.sum(self.quality))
        unattributed = float(self.unattributed.sum())
        out = {**self.config.get("credit", {}), "unattributed": unattributed}
        out["unattributed_fraction"] = unattributed / q if q > 0 else 0.0
        if self.share is not None:
            out["far_samples"] = int(np.count_nonzero(self.share < FAR_SHARE))
            out["far_share_below"] = FAR_SHARE
            out["density"] = {"neighbours": dn.NEIGHBOURS, "rule": dn.RULE}
            out["rank"] = dn.RANK_RULE
        else:
            out["rank"] = "by value; equal values keep training order"
        if self.scores is not None:
            info = self.config.get("model_aware") or {}
            out["share_from"] = out.get("credit", "paper")
            out["credit"] = "model-aware"
            out["rule"] = (
                f"each generated sample's {info.get('candidates', '?')} shortlisted training items "
                "re-scored by the model's gradients (TRAK score); q_j a_j split among the items "
                "with positive scores, in proportion to them"
            )
        return out

    def save(self, path: str | Path, **columns: Any) -> Path:
        """Write ``values.parquet``, ``attributions.parquet`` and ``result.json`` to a folder."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_parquet(self.values_frame(**columns), path / "values.parquet")
        write_parquet(self.attributions_frame(), path / "attributions.parquet")
        if self.share is not None:
            write_parquet(self.generated_frame(), path / "generated.parquet")
        if self.neighbours is not None:
            with atomic_path(path / NEIGHBOURS_FILE) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, distances=self.neighbours.distances, rows=self.neighbours.rows)
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
            share=_read_share(path),
            neighbours=_read_neighbours(path),
            scores=grid("score") if "score" in att else None,
        ).with_density()


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Atomic, deterministic Parquet: same frame, same bytes."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata(None)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True)


#: Generated samples whose attributable share is below this are far from all training data.
FAR_SHARE = 0.5
#: The columns of ``values.parquet`` that a result writes itself (others are passed through).
VALUE_COLUMNS = ("train_id", "value", "rank", "n_matches", "density", "rank_score")
#: Each training item's nearest generated samples, kept so that an append can merge its own.
NEIGHBOURS_FILE = "generated_neighbours.npz"


def _stack(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None or b is None:
        return None
    return np.concatenate([a, b]) if a.ndim == 1 else np.vstack([a, b])


def _read_share(path: Path) -> np.ndarray | None:
    f = path / "generated.parquet"
    return pd.read_parquet(f, columns=["share"])["share"].to_numpy() if f.is_file() else None


def _read_neighbours(path: Path) -> dn.GeneratedNeighbours | None:
    f = path / NEIGHBOURS_FILE
    if not f.is_file():
        return None
    with np.load(f, allow_pickle=False) as z:
        return dn.GeneratedNeighbours(z["distances"], z["rows"])
