"""Incremental valuation: add a batch of generated samples to a finished run.

Values are additive over generated samples (phi_i = sum_j V(x_i, g_j)), so a new batch is
valued against the run's saved index (``RUN/index``, reopened with ``Valuator.load``) and its
credits are added to the run's: the training set is neither re-embedded nor re-indexed, and
the result equals a run from scratch over all generated samples.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gmvaluator._io import read_json, write_json
from gmvaluator.config import ValueConfig
from gmvaluator.core.result import ValuationResult, write_parquet
from gmvaluator.core.valuator import Valuator, check_same_dim
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
from gmvaluator.rights.contributors import contributors_frame
from gmvaluator.rights.ledger import is_url
from gmvaluator.sources import load_source

_BASE_VALUE_COLUMNS = ("train_id", "value", "rank", "n_matches")
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
_RUN_FILES = ("config.json", "run.json", "values.parquet", "attributions.parquet")


@dataclass
class AppendOutcome:
    run_dir: Path
    result: ValuationResult  # the whole run after the append
    batch: ValuationResult  # the new batch alone
    batch_number: int
    ledger_rows_added: int


def combine(old: ValuationResult, new: ValuationResult) -> ValuationResult:
    """The result over the generated samples of both, as if valued together."""
    if not np.array_equal(old.train_ids, new.train_ids):
        raise InputError("the new batch was valued against a different training set.")
    n_q = old.recall_queries + new.recall_queries
    recall = (old.recall * old.recall_queries + new.recall * new.recall_queries) / max(n_q, 1)
    near = None
    if old.near_copy is not None and new.near_copy is not None:
        near = np.vstack([old.near_copy, new.near_copy])
    return dataclasses.replace(
        old,
        generated_ids=np.concatenate([old.generated_ids, new.generated_ids]),
        values=old.values + new.values,
        n_matches=old.n_matches + new.n_matches,
        distances=np.vstack([old.distances, new.distances]),
        indices=np.vstack([old.indices, new.indices]),
        credits=np.vstack([old.credits, new.credits]),
        quality=np.concatenate([old.quality, new.quality]),
        recall=float(recall),
        recall_queries=n_q,
        timings={key: old.timings.get(key, 0.0) + v for key, v in new.timings.items()},
        near_copy=near,
    )


def append_run(
    run_dir: str | Path,
    generated_spec: str,
    *,
    quality: str | Path | None = None,
    ledger: str | None = None,
    progress: bool = True,
) -> AppendOutcome:
    """Value ``generated_spec`` against the run's index and add it to the run's results.

    ``ledger`` defaults to the ledger the run recorded into; give a path or URL to record
    elsewhere, or ``none``. Generated ids already in the run are refused.
    """
    from gmvaluator.run.pipeline import embed_stage

    t_start = time.perf_counter()
    run = Path(run_dir)
    _check_run_folder(run)
    settings = read_json(run / "config.json")
    record = read_json(run / "run.json")
    cfg = ValueConfig(
        **{f.name: settings[f.name] for f in fields(ValueConfig) if f.name in settings}
    )
    old = ValuationResult.load(run)

    ds = load_source(generated_spec, text_column=cfg.text_column)
    _check_new_ids(old.generated_ids, ds.ids, generated_spec, run)
    batches = record.get("appended", [])
    number = len(batches) + 1
    role = f"generated-append-{number:03d}"
    generated = embed_stage(generated_spec, role, cfg, run, progress)
    _check_same_embedder(run, role)
    valuator = Valuator.load(run / "index")
    check_same_dim(valuator._fitted().embeddings.shape[1], generated.vectors.shape[1])

    opts = AccountingOptions(
        contributors=settings.get("contributors"),
        opt_out=settings.get("opt_out", "flag"),
        near_copy_quantile=settings.get("near_copy_quantile", 0.01),
        near_copy_embedder=settings.get("near_copy_embedder", nearcopy.RUN_SPACE),
        ledger=ledger or _recorded_ledger(record, run),
    )
    values_df = pd.read_parquet(run / "values.parquet")
    calibration = {
        key: v for key, v in (record.get("near_copy") or {}).items() if key in _CALIBRATION_KEYS
    }
    acct = RunAccounting(
        opts,
        rights_from_values(values_df, opts.opt_out),
        run_id=record.get("run_id", "run-unknown"),
        settings_sha256=record.get("settings_sha256", ""),
        near_copy=calibration or None,
        train_spec=settings.get("train"),
        cache_root=nearcopy.cache_root_of(record),
        space=nearcopy.recorded_space(record.get("near_copy") or {}, opts.near_copy_embedder),
    )
    acct.ledger_info = dict(record.get("ledger") or acct.ledger_info)
    q = None
    quality = quality if quality is not None else _run_quality(settings, run)
    if quality is not None:
        from gmvaluator.quality import quality_scores

        q = quality_scores(quality, generated.dataset, cfg.quality_norm, progress=progress)
    batch = valuator.value(generated.vectors, quality=q, ids=generated.dataset.ids)
    if cfg.rerank != "exact":
        from gmvaluator.core.rerank import rerank_result
        from gmvaluator.run.pipeline import Embedded

        train = None  # the perceptual re-ranks read the candidates' training items
        if cfg.rerank != "none":
            train = Embedded(acct.training_items(), np.empty((0, 0), np.float32), "", 0.0, True)
        batch = rerank_result(batch, valuator, train, generated, cfg.rerank,
                              n_candidates=cfg.n_candidates)  # fmt: skip
    batch = acct.apply(batch, valuator, generated.dataset, run, generated_vectors=generated.vectors)
    result = combine(old, batch)

    extra_cols = {
        c: values_df[c].to_numpy() for c in values_df.columns if c not in _BASE_VALUE_COLUMNS
    }
    result.save(run, **extra_cols)
    if acct.rights.contributors is not None:
        frame = contributors_frame(result.values, result.n_matches, acct.rights.contributors)
        write_parquet(frame, run / "contributors.parquet")
    added = 0
    target = opts.ledger_target(run)
    if target is not None:
        added = acct.record_credits(target, batch, generated.dataset, valuator, run)

    batches.append(
        {
            "source": generated_spec,
            "sha256": generated.source_hash,
            "n": len(generated.dataset),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": time.perf_counter() - t_start,
            "ledger_rows_added": added,
        }
    )
    acct_record = acct.record(result)
    if target is None:
        acct_record["ledger"] = record.get("ledger")
    record.update(
        {
            "appended": batches,
            "counts": result.summary(),
            "recall": {
                "recall_at_k": result.recall,
                "k": result.k,
                "queries": result.recall_queries,
            },
            **acct_record,
        }
    )
    write_json(run / "run.json", record)
    return AppendOutcome(run, result, batch, number, added)


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


def _check_run_folder(run: Path) -> None:
    missing = [name for name in _RUN_FILES if not (run / name).is_file()]
    if not (run / "index" / "index.json").is_file():
        missing.append("index/index.json")
    if missing:
        raise InputError(
            f"{run} is not a finished valuation run (no {', '.join(missing)}). Run "
            "`gmvaluator value --train ... --generated ... --out RUN` first, then --append RUN."
        )


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


def append_command(
    run: Path, generated: str, *, quality: str | Path | None, ledger: str | None, quiet: bool
) -> None:
    """``gmvaluator value --append RUN --generated NEW``: append, then print a summary."""
    import typer

    out = append_run(run, generated, quality=quality, ledger=ledger, progress=not quiet)
    s = out.result.summary()
    flagged = int(out.batch.near_copy.any(axis=1).sum()) if out.batch.near_copy is not None else 0
    typer.echo(
        f"appended {len(out.batch.generated_ids)} generated samples to {run} (batch "
        f"{out.batch_number}); the run now values {s['n_train']} training items against "
        f"{s['n_generated']} generated samples"
    )
    typer.echo(f"matched {s['n_matched']} of {s['n_train']} training items; {flagged} near copies")
    typer.echo(f"ledger: {out.ledger_rows_added} new credits")
    typer.echo(f"wrote {run}/values.parquet, attributions.parquet, run.json")
