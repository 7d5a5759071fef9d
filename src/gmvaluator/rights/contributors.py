"""Who owns each training item, under which licence, and whether they opted out.

- **Contributors** come from the training source's ``contributor`` column, or from a CSV of
  ``id,contributor`` (``--contributors FILE``), which then wins. Per-contributor values are the
  sums of their items' values (``contributors_frame``).
- **Licence** and **opt-out** come from optional ``licence`` (or ``license``) and ``opt_out``
  columns. The opt-out policy is ``flag`` (match as usual, mark the items) or ``exclude``
  (opted-out items are left out of the index, so no query can ever return them: they never
  receive credit).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gmvaluator.core.result import ValuationResult
from gmvaluator.errors import InputError, check_param
from gmvaluator.sources import Dataset

OPT_OUT_POLICIES = ("flag", "exclude")
_TRUE = {"1", "true", "yes", "y", "t", "opt-out", "opt_out", "opted-out"}
_FALSE = {"0", "false", "no", "n", "f", ""}


@dataclass(frozen=True)
class TrainingRights:
    """Per-training-item contributor, licence and opt-out flag, and the opt-out policy."""

    ids: np.ndarray
    contributors: np.ndarray | None
    licence: np.ndarray | None
    opt_out: np.ndarray | None
    policy: str = "flag"
    contributors_source: str | None = None

    @property
    def keep(self) -> np.ndarray | None:
        """Training rows that may be matched, or None when every row may."""
        if self.policy != "exclude" or self.opt_out is None or not self.opt_out.any():
            return None
        return np.flatnonzero(~self.opt_out)

    def columns(self) -> dict[str, np.ndarray | None]:
        """Columns carried into ``values.parquet`` next to each training item's value."""
        return {"contributor": self.contributors, "licence": self.licence, "opt_out": self.opt_out}

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records about contributors, licences and the opt-out policy."""
        n_out = int(self.opt_out.sum()) if self.opt_out is not None else 0
        return {
            "opt_out_policy": self.policy,
            "has_opt_out_column": self.opt_out is not None,
            "n_opted_out": n_out,
            "n_excluded_from_matching": n_out if self.policy == "exclude" else 0,
            "has_licence_column": self.licence is not None,
            "contributors_source": self.contributors_source,
            "n_contributors": None
            if self.contributors is None
            else len(np.unique(self.contributors)),
        }

    def expand(self, result: ValuationResult) -> ValuationResult:
        """A result of a valuator fitted on the kept rows, mapped back onto every row."""
        return expand_result(result, self.ids, self.keep)


def resolve_rights(
    ds: Dataset, *, contributors_file: str | Path | None = None, policy: str = "flag"
) -> TrainingRights:
    """Read contributor, licence and opt-out columns of a training source."""
    check_param(
        "value", "opt_out", policy, policy in OPT_OUT_POLICIES, f"one of {OPT_OUT_POLICIES}"
    )
    contributors, source = (
        ds.contributors,
        "contributor column" if ds.contributors is not None else None,
    )
    if contributors_file is not None:
        contributors = read_contributor_map(contributors_file, ds.ids)
        source = str(contributors_file)
    licence_key = next((k for k in ("licence", "license") if k in ds.extra), None)
    licence = None if licence_key is None else np.asarray(ds.extra[licence_key]).astype(str)
    opt_out = None
    if "opt_out" in ds.extra:
        opt_out = as_opt_out(ds.extra["opt_out"], ds.ids, f"column 'opt_out' of {ds.name}")
    if policy == "exclude" and opt_out is not None and opt_out.all():
        raise InputError(
            f"every training item of {ds.name} has opt_out set, so --opt-out exclude leaves "
            "nothing to match. Check the opt_out column or use --opt-out flag."
        )
    return TrainingRights(
        ids=np.asarray(ds.ids).astype(str),
        contributors=None if contributors is None else np.asarray(contributors).astype(str),
        licence=licence,
        opt_out=opt_out,
        policy=policy,
        contributors_source=source,
    )


def as_opt_out(values: Any, ids: np.ndarray, where: str) -> np.ndarray:
    """Opt-out flags as bool: booleans, 0/1, or words such as true/false, yes/no."""
    arr = np.asarray(values)
    if arr.dtype.kind == "b":
        return arr.astype(bool)
    if arr.dtype.kind in "iuf":
        bad = ~np.isin(arr, (0, 1))
    else:
        words = np.char.lower(np.char.strip(arr.astype(str)))
        bad = ~np.isin(words, list(_TRUE | _FALSE))
        if not bad.any():
            return np.isin(words, list(_TRUE))
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{where} has {arr[j].item()!r} for item {str(ids[j])!r}; opt_out must be "
            "true/false, yes/no or 1/0. Fix that value."
        )
    return arr.astype(bool)


def read_contributor_map(path: str | Path, ids: np.ndarray) -> np.ndarray:
    """The contributor of every training id from a CSV with columns ``id`` and ``contributor``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"contributors file {path} does not exist. Check the --contributors path.")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"contributors file {path} is not a readable CSV: {exc}.") from exc
    if not {"id", "contributor"} <= set(df.columns):
        raise InputError(
            f"contributors file {path} needs columns 'id' and 'contributor'; it has "
            f"{list(df.columns)}."
        )
    dup = df["id"].duplicated()
    if dup.any():
        raise InputError(
            f"contributors file {path} lists id {df.loc[dup, 'id'].iloc[0]!r} more than once. "
            "Give each training item one contributor."
        )
    lookup = dict(zip(df["id"], df["contributor"], strict=True))
    missing = [str(i) for i in np.asarray(ids).astype(str) if i not in lookup]
    if missing:
        raise InputError(
            f"contributors file {path} has no contributor for training item {missing[0]!r} "
            f"({len(missing)} missing). Add a row 'id,contributor' for every training item."
        )
    return np.array([lookup[str(i)] for i in np.asarray(ids).astype(str)], dtype=str)


def expand_result(
    result: ValuationResult, all_ids: np.ndarray, keep: np.ndarray | None
) -> ValuationResult:
    """Map a result over the kept training rows ``keep`` back onto all rows of ``all_ids``.

    Rows left out get value 0, no matches and no generated neighbours (the lowest density);
    match indices become rows of the full set.
    """
    if keep is None:
        return result
    n = len(all_ids)
    if len(result.train_ids) != len(keep) or not np.array_equal(
        result.train_ids.astype(str), np.asarray(all_ids).astype(str)[keep]
    ):
        raise InputError(
            "the index does not hold the training items kept by the opt-out policy. Re-run "
            "with --overwrite to rebuild it."
        )
    values = np.zeros(n, dtype=np.float64)
    values[keep] = result.values
    counts = np.zeros(n, dtype=np.int64)
    counts[keep] = result.n_matches
    return replace(
        result,
        train_ids=np.asarray(all_ids).astype(str),
        values=values,
        n_matches=counts,
        indices=keep[result.indices],
        neighbours=None if result.neighbours is None else result.neighbours.expanded(keep, n),
    ).with_density()


def contributors_frame(
    values: np.ndarray, n_matches: np.ndarray, contributors: np.ndarray
) -> pd.DataFrame:
    """One row per contributor: total value, share of all credit, items, items matched.

    Sorted by value, highest first (ties by name), so the first row is owed the most.
    """
    df = pd.DataFrame(
        {
            "contributor": np.asarray(contributors).astype(str),
            "value": np.asarray(values, dtype=np.float64),
            "matched": np.asarray(n_matches) > 0,
        }
    )
    out = df.groupby("contributor", sort=True).agg(
        value=("value", "sum"), n_items=("value", "size"), n_matched=("matched", "sum")
    )
    total = float(out["value"].sum())
    out.insert(1, "share", out["value"] / total if total > 0 else 0.0)
    out = out.reset_index().astype({"n_items": np.int64, "n_matched": np.int64})
    return out.sort_values(["value", "contributor"], ascending=[False, True]).reset_index(drop=True)
