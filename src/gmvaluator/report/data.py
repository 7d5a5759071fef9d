"""What a report shows, read from a finished run folder and reduced to bounded tables.

Everything here is plain pandas/numpy over ``values.parquet`` and ``attributions.parquet``; the
page (``gmvaluator.report.page``) only formats what these functions return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gmvaluator.errors import InputError
from gmvaluator.files import read_json
from gmvaluator.run.folder import RunFolder

if TYPE_CHECKING:
    from gmvaluator.report.media import Media, MediaSet


@dataclass
class RunData:
    """The tables and records of one run folder."""

    run_dir: Path
    values: pd.DataFrame
    attributions: pd.DataFrame
    run: dict[str, Any]
    config: dict[str, Any]
    k: int
    generated_ids: np.ndarray
    evaluations: dict[str, Any] = field(default_factory=dict)
    #: one row per generated sample (share, unattributed) under the calibrated credit rule
    generated: pd.DataFrame | None = None

    @property
    def n_train(self) -> int:
        return len(self.values)

    @property
    def n_generated(self) -> int:
        return len(self.generated_ids)

    @property
    def train_labels(self) -> np.ndarray | None:
        return self.values["label"].to_numpy() if "label" in self.values else None

    def matches(self, j: int) -> pd.DataFrame:
        """The k attribution rows of generated sample ``j`` (rows are stored j-major)."""
        return self.attributions.iloc[j * self.k : (j + 1) * self.k]


@dataclass(frozen=True)
class PageInputs:
    """What the sections of one page draw on, gathered once: the run, its training and
    generated items to show, the generated samples' labels, class names and the near-copy
    distance in force."""

    run: RunData
    train: Media
    gen: MediaSet
    gen_labels: np.ndarray | None
    names: dict[Any, str]
    near_copy: float | None


def read_run(run_dir: str | Path) -> RunData:
    """Open a run folder written by ``gmvaluator value``; InputError naming what is missing."""
    run_dir = RunFolder(run_dir).require_finished("report").path
    values = pd.read_parquet(run_dir / "values.parquet")
    att = pd.read_parquet(run_dir / "attributions.parquet")
    run = read_json(run_dir / "run.json")
    config = read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
    k = int(att["rank"].max()) if len(att) else 0
    if k == 0 or len(att) % k:
        raise InputError(
            f"{run_dir / 'attributions.parquet'} does not hold k rows per generated sample. "
            "Re-run `gmvaluator value` into a new folder."
        )
    return RunData(
        run_dir=run_dir,
        values=values,
        attributions=att,
        run=run,
        config=config,
        k=k,
        generated_ids=att["generated_id"].to_numpy()[::k].astype(str),
        evaluations=read_evaluations(run_dir),
        generated=_read_optional(run_dir / "generated.parquet"),
    )


def _read_optional(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.is_file() else None


def mark_near_copies(run: RunData, threshold: float | None) -> float | None:
    """Add a bool ``flag`` column to the attributions: the run's own ``near_copy`` flags, or
    ``distance <= threshold`` when a threshold is given. Returns the threshold in force."""
    att = run.attributions
    recorded = (run.run.get("near_copy") or {}).get("threshold")
    if threshold is None and "near_copy" in att:
        att["flag"] = att["near_copy"].astype(bool)
        return recorded
    threshold = recorded if threshold is None else threshold
    att["flag"] = att["distance"] <= threshold if threshold is not None else False
    return threshold


def read_evaluations(run_dir: Path) -> dict[str, Any]:
    """``RUN/eval/*.json`` (and the demo's ``demo.json``) by file stem, in name order."""
    found: dict[str, Any] = {}
    paths = sorted((run_dir / "eval").glob("*.json")) if (run_dir / "eval").is_dir() else []
    if (run_dir / "demo.json").is_file():
        paths.append(run_dir / "demo.json")
    for path in paths:
        try:
            found[path.stem] = read_json(path)
        except ValueError as exc:
            raise InputError(f"{path} is not valid JSON ({exc}). Fix or remove it.") from exc
    return found


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 when equal, near 1 when one item has all."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * np.dot(ranks, x) / (n * total) - (n + 1.0) / n)


def lorenz(values: np.ndarray, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(share of items, share of credit) of the poorest items, at most ``points`` + 1 points."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    total = x.sum()
    cum = np.concatenate([[0.0], np.cumsum(x) / (total if total > 0 else 1.0)])
    at = np.unique(np.linspace(0, len(x), min(points, len(x)) + 1).round().astype(np.int64))
    return at / max(len(x), 1), cum[at]


def most_valuable(values: pd.DataFrame, n: int) -> pd.DataFrame:
    """The highest values (equal values: the better rank first)."""
    return values.sort_values(["value", "rank"], ascending=[False, True]).head(n)


def least_valuable(values: pd.DataFrame, n: int) -> pd.DataFrame:
    """The last items by rank. Under the calibrated credit rule the rank orders every item
    (value and density); under the paper's rule only items with credit are listed."""
    ranked = values if "density" in values else values[values["value"] > 0]
    return ranked.nlargest(n, "rank").sort_values("rank", ascending=False)


def contributor_table(values: pd.DataFrame) -> pd.DataFrame:
    """Per contributor: total credit, share, items, matched items; best first."""
    return _group_table(values, "contributor")


def class_table(values: pd.DataFrame) -> pd.DataFrame:
    """Per training class: total credit, share, items, matched items; by class."""
    return _group_table(values, "label").sort_values("group").reset_index(drop=True)


def _group_table(values: pd.DataFrame, column: str) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"group": values[column], "credit": values["value"], "matched": values["n_matches"] > 0}
    )
    grouped = frame.groupby("group", sort=False)
    table = pd.DataFrame(
        {
            "credit": grouped["credit"].sum(),
            "items": grouped["credit"].size(),
            "matched": grouped["matched"].sum().astype(np.int64),
        }
    )
    total = table["credit"].sum()
    table["share"] = table["credit"] / total if total > 0 else 0.0
    table = table.reset_index()
    order = np.lexsort((table["group"].astype(str).to_numpy(), -table["credit"].to_numpy()))
    return table.iloc[order].reset_index(drop=True)


def class_mix(
    data: RunData, generated_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(generated classes, training classes, shares): per generated class, the share of its
    credit that went to each training class (rows sum to 1 where the class got any credit)."""
    train_labels = data.train_labels
    if train_labels is None:
        raise ValueError("the run has no training labels")
    att = data.attributions
    rows, gen = np.unique(np.repeat(np.asarray(generated_labels), data.k), return_inverse=True)
    cols, got = np.unique(train_labels[att["train_row"].to_numpy()], return_inverse=True)
    cells = np.bincount(
        gen * len(cols) + got, weights=att["credit"].to_numpy(), minlength=len(rows) * len(cols)
    ).reshape(len(rows), len(cols))
    sums = cells.sum(axis=1, keepdims=True)
    shares = np.divide(cells, sums, out=np.zeros_like(cells), where=sums > 0)
    return rows, cols, shares


def pick_samples(n_generated: int, n: int, labels: np.ndarray | None = None) -> np.ndarray:
    """Which generated samples get a section: a few of every class in turn, or evenly spaced."""
    if n >= n_generated:
        return np.arange(n_generated)
    if labels is None:
        return np.unique(np.linspace(0, n_generated - 1, n).round().astype(np.int64))
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    # position of each sample within its class, then interleave classes in order of appearance
    within = np.zeros(n_generated, dtype=np.int64)
    counts = np.zeros(len(first), dtype=np.int64)
    for j, c in enumerate(inverse):
        within[j] = counts[c]
        counts[c] += 1
    class_order = np.argsort(np.argsort(first))
    order = np.lexsort((class_order[inverse], within))
    return np.sort(order[:n])


def class_names(spec: str | None) -> dict[Any, str]:
    """Readable names of integer labels for the built-in sources that have them."""
    if spec and spec.startswith("builtin:fashion-mnist"):
        from gmvaluator.sources import FASHION_MNIST_CLASSES

        return dict(enumerate(FASHION_MNIST_CLASSES))
    return {}
