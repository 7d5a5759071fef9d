"""Incremental valuation: add a batch of generated samples to a finished run.

Values are additive over generated samples (phi_i = sum_j V(x_i, g_j)), so a new batch is
valued against the run's saved index (``RUN/index``, reopened with ``Valuator.load``) and its
credits are added to the run's: the training set is neither re-embedded nor re-indexed, and
the result equals a run from scratch over all generated samples. The batch goes through the
same stages as a full run (``gmvaluator.run.pipeline``): value, write, record.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gmvaluator.config import ValueConfig
from gmvaluator.core.result import VALUE_COLUMNS, ValuationResult
from gmvaluator.core.valuator import Valuator, check_same_dim
from gmvaluator.engines import Embedded, Engine, LocalEngine
from gmvaluator.errors import InputError
from gmvaluator.rights import nearcopy
from gmvaluator.rights.accounting import (
    LEDGER_IN_RUN,
    LEDGER_OFF,
    AccountingOptions,
    RunAccounting,
    embedder_of,
    rights_from_values,
)
from gmvaluator.rights.ledger import is_url
from gmvaluator.run.folder import RunFolder, holding_lock
from gmvaluator.run.pipeline import quality_stage, result_record, value_stage, write_stage
from gmvaluator.sources import load_source

_CALIBRATION_KEYS = (
    "space",
    "rule",
    "quantile",
    "sample",
    "metric",
    "search",
    "threshold",
    "train_nn_median",
    "neighbours",
    "descriptors",
    "space_reason",
)


@dataclass
class AppendOutcome:
    run_dir: Path
    result: ValuationResult  # the whole run after the append
    batch: ValuationResult  # the new batch alone
    batch_number: int
    ledger_rows_added: int


@holding_lock
def append_run(
    run_dir: str | Path,
    generated_spec: str,
    *,
    quality: str | Path | None = None,
    ledger: str | None = None,
    progress: bool = True,
    engine: Engine | None = None,
) -> AppendOutcome:
    """Value ``generated_spec`` against the run's index and add it to the run's results.

    ``ledger`` defaults to the ledger the run recorded into; give a path or URL to record
    elsewhere, or ``none``. Generated ids already in the run are refused. ``engine`` embeds
    and searches the batch, as in ``run_value`` (default: the local engine).
    """
    t_start = time.perf_counter()
    engine = engine or LocalEngine()
    folder = RunFolder(run_dir).require_finished("append")
    settings, record = folder.read_settings(), folder.read_record()
    cfg = ValueConfig.from_settings(settings)
    old = ValuationResult.load(folder.path)
    number = len(record.get("appended", [])) + 1
    generated = _embed_batch(engine, folder, generated_spec, cfg, old, number, progress)
    valuator = Valuator.load(folder.index)
    check_same_dim(valuator.embeddings_.shape[1], generated.vectors.shape[1])
    values_df = pd.read_parquet(folder.values)
    acct = _reopen_accounting(folder, settings, record, values_df, ledger)
    scores = quality_stage(
        quality if quality is not None else _run_quality(settings, folder.path),
        generated.dataset, cfg, progress,
    )  # fmt: skip
    train = _rerank_training_items(acct, cfg.rerank)
    batch = value_stage(
        valuator, train, generated, scores, acct, cfg, engine, folder.path, progress
    )
    result = old.extended(batch)
    columns = {c: values_df[c].to_numpy() for c in values_df if c not in VALUE_COLUMNS}
    added = write_stage(folder, result, batch, generated.dataset, valuator, acct, columns)
    entry = {
        "source": generated_spec,
        "sha256": generated.source_hash,
        "n": len(generated.dataset),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - t_start,
        "ledger_rows_added": added,
    }
    folder.write_record(_appended_record(folder, record, result, acct, entry))
    return AppendOutcome(folder.path, result, batch, number, added)


def _embed_batch(
    engine: Engine,
    folder: RunFolder,
    spec: str,
    cfg: ValueConfig,
    old: ValuationResult,
    number: int,
    progress: bool,
) -> Embedded:
    """The new batch embedded into ``RUN/embeddings/generated-append-NNN`` by the run's
    embedder, after checking that none of its ids is in the run already."""
    ds = load_source(spec, text_column=cfg.text_column, kind=cfg.generated_kind)
    _check_new_ids(old.generated_ids, ds.ids, spec, folder.path)
    role = f"generated-append-{number:03d}"
    generated = engine.embed(spec, role, cfg, folder.path, progress)
    _check_same_embedder(folder.path, role)
    return generated


def _reopen_accounting(
    folder: RunFolder,
    settings: dict[str, Any],
    record: dict[str, Any],
    values: pd.DataFrame,
    ledger: str | None,
) -> RunAccounting:
    """The run's accounting as it was: its options, rights, run id, near-copy calibration and
    space, and the ledger it recorded into (unless ``ledger`` names another)."""
    opts = _accounting_options(settings, ledger or _recorded_ledger(record, folder.path))
    near_copy = record.get("near_copy") or {}
    calibration = {key: v for key, v in near_copy.items() if key in _CALIBRATION_KEYS}
    acct = RunAccounting(
        opts,
        rights_from_values(values, opts.opt_out),
        run_id=record.get("run_id", "run-unknown"),
        settings_sha256=record.get("settings_sha256", ""),
        near_copy=calibration or None,
        train_spec=settings.get("train"),
        cache_root=nearcopy.cache_root_of(record),
        space=nearcopy.recorded_space(near_copy, opts.near_copy_embedder),
    )
    acct.ledger_info = dict(record.get("ledger") or acct.ledger_info)
    return acct


def _accounting_options(settings: dict[str, Any], ledger: str) -> AccountingOptions:
    """The accounting options recorded in ``config.json``, recording into ``ledger``."""
    # runs made before the near-copy space was a setting flagged in the run's own space
    recorded: dict[str, Any] = {"near_copy_embedder": nearcopy.RUN_SPACE}
    keys = AccountingOptions().settings()
    recorded.update({key: settings[key] for key in keys if key in settings})
    return AccountingOptions(**recorded, ledger=ledger)


def _rerank_training_items(acct: RunAccounting, method: str) -> Embedded | None:
    """The training items a perceptual re-rank reads (its candidates'); the others read none."""
    if method in ("exact", "none"):
        return None
    empty = np.empty((0, 0), np.float32)
    return Embedded(acct.training_items(), empty, "", 0.0, True)


def _appended_record(
    folder: RunFolder,
    record: dict[str, Any],
    result: ValuationResult,
    acct: RunAccounting,
    entry: dict[str, Any],
) -> dict[str, Any]:
    """``run.json`` after an append: the batch listed, and what follows the whole result."""
    update = result_record(result, acct)
    if acct.opts.ledger_target(folder.path) is None:
        update["ledger"] = record.get("ledger")  # what the run recorded before stays its record
    return {**record, "appended": [*record.get("appended", []), entry], **update}


def _run_quality(settings: dict[str, Any], run: Path) -> str | None:
    """The run's quality backend for a new batch; a file of scores cannot cover new samples."""
    spec = settings.get("quality")
    if spec is None or spec == "none":
        return None
    if str(spec).lower().endswith(".csv") or Path(spec).is_file():
        raise InputError(
            f"run {run} took its quality scores from {spec}; give the new batch's scores with "
            "--quality FILE (a CSV of id,quality)."
        )
    return str(spec)


def _recorded_ledger(record: dict[str, Any], run: Path) -> str:
    """The ledger the run recorded into, unless it needs a password we never stored."""
    target = (record.get("ledger") or {}).get("target")
    if target is None:
        return LEDGER_OFF if "ledger" in record else LEDGER_IN_RUN
    if is_url(target) and "***" in target:
        raise InputError(
            f"run {run} records into {target}; give its full URL again with --ledger "
            "(passwords are not stored in run.json)."
        )
    return str(target)


def _check_new_ids(old_ids: np.ndarray, new_ids: np.ndarray, spec: str, run: Path) -> None:
    seen = np.isin(np.asarray(new_ids).astype(str), old_ids.astype(str))
    if seen.any():
        dup = np.asarray(new_ids)[seen]
        raise InputError(
            f"generated sample {str(dup[0])!r} of {spec} is already in run {run} "
            f"({int(seen.sum())} repeated ids). Give the new batch ids of its own, or drop "
            "the samples that were valued before."
        )


def _check_same_embedder(run: Path, role: str) -> None:
    train = embedder_of(run, "train")
    new = embedder_of(run, role)
    if train is not None and new is not None and train != new:
        raise InputError(
            f"the new batch embeds with {json.dumps(new)} but the run's training set with "
            f"{json.dumps(train)}. Give the new batch in the same format as the run's "
            "generated samples."
        )
