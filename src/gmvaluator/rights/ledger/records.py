"""Credit rows for the ledger, built from a valuation result and the run that made it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from gmvaluator.core.result import ValuationResult
from gmvaluator.sources import Dataset, ImageItems


def run_id_of(settings: dict[str, Any], train_sha256: str) -> str:
    """A run's id: the same settings over the same training data give the same id, so that
    recording a re-run adds nothing to the ledger."""
    blob = json.dumps({"settings": settings, "train": train_sha256}, sort_keys=True, default=str)
    return "run-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def item_hashes(ds: Dataset) -> np.ndarray:
    """SHA-256 of each item's content (image bytes or pixels, text, or embedding row)."""
    out = []
    for i in range(len(ds)):
        if ds.kind == "text":
            data = str(ds.items[i]).encode("utf-8", "surrogatepass")  # type: ignore[index]
        elif ds.kind == "embedding":
            data = np.ascontiguousarray(np.asarray(ds.items)[i], dtype=np.float32).tobytes()
        else:
            assert isinstance(ds.items, ImageItems)
            data = ds.items.raw_bytes(i)
        out.append(hashlib.sha256(data).hexdigest())
    return np.array(out, dtype=str)


def credit_rows(
    result: ValuationResult,
    *,
    run_id: str,
    generated_sha256: np.ndarray | None = None,
    contributors: np.ndarray | None = None,
    licence: np.ndarray | None = None,
    index_version: str | None = None,
    embedder: str | None = None,
    settings_sha256: str | None = None,
    recorded_at: str | None = None,
) -> pd.DataFrame:
    """One ledger row per (generated sample, match) of ``result``.

    ``contributors`` and ``licence`` are per training row (aligned with ``result.train_ids``).
    """
    df = result.attributions_frame()
    rows = df.pop("train_row").to_numpy()
    k = result.indices.shape[1]
    df.insert(0, "run_id", run_id)
    df["generated_sha256"] = None if generated_sha256 is None else np.repeat(generated_sha256, k)
    df["contributor"] = None if contributors is None else np.asarray(contributors)[rows]
    df["licence"] = None if licence is None else np.asarray(licence)[rows]
    if "near_copy" not in df:
        df["near_copy"] = False
    df["near_copy"] = df["near_copy"].astype(np.int64)
    df["index_version"] = index_version
    df["embedder"] = embedder
    df["settings_sha256"] = settings_sha256
    df["recorded_at"] = recorded_at or datetime.now(UTC).isoformat(timespec="seconds")
    return df


@dataclass(frozen=True)
class RunStamp:
    """What every ledger row of one run carries beside the credit itself: the run's id, the
    hash of its settings, and the versions of its index and embedder."""

    run_id: str
    settings_sha256: str | None = None
    index_version: str | None = None
    embedder: str | None = None

    def credit_rows(
        self,
        result: ValuationResult,
        *,
        generated_sha256: np.ndarray | None = None,
        contributors: np.ndarray | None = None,
        licence: np.ndarray | None = None,
    ) -> pd.DataFrame:
        """``credit_rows`` of ``result`` stamped with this run."""
        return credit_rows(
            result,
            run_id=self.run_id,
            generated_sha256=generated_sha256,
            contributors=contributors,
            licence=licence,
            index_version=self.index_version,
            embedder=self.embedder,
            settings_sha256=self.settings_sha256,
        )
