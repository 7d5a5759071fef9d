"""``gmvaluator value``: value a training set against generated samples, or add a batch to a
finished run (``--append``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gmvaluator.cli.common import (
    Credit,
    Embedder,
    Index,
    K,
    Metric,
    Overwrite,
    Quiet,
    Temperature,
    command_keys,
    config_table,
    handle_errors,
    setting_option,
)
from gmvaluator.cli.report import ReportFlag, mark_report_stale, report_after_run
from gmvaluator.cli.summary import print_summary

if TYPE_CHECKING:
    from gmvaluator.run.pipeline import RunOutcome


def register(app: typer.Typer) -> None:
    app.command()(value)


@handle_errors
@config_table
def value(
    generated: Annotated[str, typer.Option(help="Generated source: path or builtin:NAME.")],
    run: Annotated[
        Path | None,
        typer.Argument(
            metavar="RUN", help="Run folder to write (or --out RUN). Required, unless --append."
        ),
    ] = None,
    train: Annotated[
        str | None,
        typer.Option(help="Training source: path or builtin:NAME. Required, unless --append."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Run folder to write, as the RUN argument."),
    ] = None,
    append: Annotated[
        Path | None, typer.Option(help="Add --generated to this finished run (no --train).")
    ] = None,
    contributors: Annotated[
        Path | None, typer.Option(help="CSV of id,contributor per training item.")
    ] = None,
    opt_out: Annotated[
        str, typer.Option(help="Opted-out training items: flag, or exclude from matching.")
    ] = "flag",
    near_copy_quantile: Annotated[
        float, typer.Option(help="Near-copy threshold: this quantile of train NN distances.")
    ] = 0.01,
    near_copy_embedder: Annotated[
        str,
        typer.Option(
            help="Near-copy space: auto (SSCD descriptors of the matched images when SSCD is "
            "installed, else run), run (the run's embeddings), or sscd / sscd-distilled on "
            "every training item."
        ),
    ] = "auto",
    ledger: Annotated[
        str | None,
        typer.Option(help="Ledger: a file, postgresql:// URL or none [RUN/ledger.sqlite]."),
    ] = None,
    embedder: Embedder = None,
    k: K = None,
    index: Index = None,
    metric: Metric = None,
    temperature: Temperature = None,
    credit: Credit = None,
    quality: Annotated[
        str | None,
        typer.Option(
            help="Quality q_j: none, brisque, piqe, sharpness, maniqa[:WEIGHTS], file:CSV or a "
            "CSV of id,quality [none]."
        ),
    ] = None,
    quality_norm: Annotated[str | None, setting_option("quality_norm")] = None,
    rerank: Annotated[str | None, setting_option("rerank")] = None,
    cache: Annotated[
        str | None,
        typer.Option(help="Embedding cache folder shared by runs, or none [~/.cache/gmvaluator]."),
    ] = None,
    nprobe: Annotated[int | None, setting_option("nprobe")] = None,
    n_candidates: Annotated[int | None, setting_option("n_candidates")] = None,
    text_column: Annotated[str | None, setting_option("text_column")] = None,
    train_kind: Annotated[str | None, setting_option("train_kind")] = None,
    generated_kind: Annotated[str | None, setting_option("generated_kind")] = None,
    batch_size: Annotated[int | None, setting_option("batch_size")] = None,
    embedding_dtype: Annotated[str | None, setting_option("embedding_dtype")] = None,
    seed: Annotated[int | None, setting_option("seed")] = None,
    threads: Annotated[int | None, setting_option("threads")] = None,
    device: Annotated[str | None, setting_option("device")] = None,
    runtime: Annotated[str | None, setting_option("runtime")] = None,
    model: Annotated[str | None, setting_option("model")] = None,
    checkpoints: Annotated[str | None, setting_option("checkpoints")] = None,
    model_output: Annotated[str | None, setting_option("model_output")] = None,
    shortlist: Annotated[int | None, setting_option("shortlist")] = None,
    by_label: Annotated[str | None, setting_option("by_label")] = None,
    ridge: Annotated[float | None, setting_option("ridge")] = None,
    draws: Annotated[int | None, setting_option("draws")] = None,
    output_draws: Annotated[int | None, setting_option("output_draws")] = None,
    gradient_dim: Annotated[int | None, setting_option("gradient_dim")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file of settings.")] = None,
    on_error: Annotated[
        str, typer.Option(help="raise: stop at a bad item; skip: drop it, list it in skipped.csv.")
    ] = "raise",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Print where the time went (run.json timings).")
    ] = False,
    report: ReportFlag = False,
    target_recall: Annotated[float | None, setting_option("target_recall")] = None,
    expected_queries: Annotated[int | None, setting_option("expected_queries")] = None,
    engine: Annotated[
        str, typer.Option(help="local, or ray: embed and search on a Ray cluster.")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address [start a local one].")
    ] = None,
) -> None:
    """Value every training item against the generated samples; write RUN/values.parquet."""
    from gmvaluator.config import load_config
    from gmvaluator.engines import open_engine
    from gmvaluator.errors import InputError
    from gmvaluator.rights.accounting import AccountingOptions
    from gmvaluator.run.pipeline import run_value

    if append is not None:
        if train is not None or out is not None or run is not None:
            raise InputError(
                "--append RUN takes no --train, --out or RUN argument: the run folder has them."
            )
        _append(append, generated, quality=quality, ledger=ledger, quiet=quiet)
        if report:
            report_after_run(append, progress=not quiet)
        else:
            mark_report_stale(append, f"samples were appended from {generated}")
        return
    out = _run_folder(run, out)
    if train is None or out is None:
        raise InputError(
            "value needs --train and --out RUN (or RUN as its argument), or --append RUN to "
            "extend a finished run."
        )

    cfg = load_config(
        config,
        command_keys=command_keys(),
        embedder=embedder,
        k=k,
        index=index,
        metric=metric,
        temperature=temperature,
        credit=credit,
        nprobe=nprobe,
        n_candidates=n_candidates,
        text_column=text_column,
        train_kind=train_kind,
        generated_kind=generated_kind,
        batch_size=batch_size,
        embedding_dtype=embedding_dtype,
        seed=seed,
        rerank=rerank,
        quality_norm=quality_norm,
        target_recall=target_recall,
        expected_queries=expected_queries,
        threads=threads,
        device=device,
        runtime=runtime,
        model=model,
        checkpoints=checkpoints,
        model_output=model_output,
        shortlist=shortlist,
        by_label=by_label,
        ridge=ridge,
        draws=draws,
        output_draws=output_draws,
        gradient_dim=gradient_dim,
    )
    accounting = AccountingOptions(
        contributors=None if contributors is None else str(contributors),
        opt_out=opt_out,
        near_copy_quantile=near_copy_quantile,
        near_copy_embedder=near_copy_embedder,
        ledger=ledger or "run",
    )
    with open_engine(engine, address) as eng:
        outcome = run_value(
            train, generated, out, cfg, quality=quality, overwrite=overwrite,
            progress=not quiet, on_error=on_error, cache=_cache_dir(cache),
            accounting=accounting, engine=eng,
        )  # fmt: skip
    _print_run(outcome, out, skipped=on_error == "skip")
    if verbose:
        typer.echo("timings: " + ", ".join(f"{k} {v:.2f}" for k, v in outcome.timings.items()))
    if report:
        report_after_run(out, progress=not quiet)


def _run_folder(run: Path | None, out: Path | None) -> Path | None:
    """The run folder, given as the RUN argument or as ``--out`` (not two different ones)."""
    from gmvaluator.errors import InputError

    if run is not None and out is not None and run != out:
        raise InputError(f"RUN {run} and --out {out} name two folders. Give one of them.")
    return run if run is not None else out


def _print_run(outcome: RunOutcome, out: Path, skipped: bool) -> None:
    """The summary of a finished ``value`` run."""
    s = outcome.result.summary()
    after = [f"skipped {outcome.n_skipped} bad items (listed in {out}/skipped.csv)"] * skipped
    print_summary(
        out,
        f"valued {s['n_train']} training items against {s['n_generated']} generated samples",
        after=[*after, f"wrote {out}/values.parquet, attributions.parquet, config.json, run.json"],
    )


def _append(
    run: Path, generated: str, *, quality: str | None, ledger: str | None, quiet: bool
) -> None:
    """``value --append RUN --generated NEW``: append the batch, then print a summary."""
    from gmvaluator.run.append import append_run

    out = append_run(run, generated, quality=quality, ledger=ledger, progress=not quiet)
    s = out.result.summary()
    near = out.batch.near_copy
    flagged = int(near.any(axis=1).sum()) if near is not None else 0
    print_summary(
        run,
        f"appended {len(out.batch.generated_ids)} generated samples to {run} (batch "
        f"{out.batch_number}, {flagged} of them near copies); the run now values "
        f"{s['n_train']} training items against {s['n_generated']} generated samples",
        after=[
            f"ledger: {out.ledger_rows_added} new credits",
            f"wrote {run}/values.parquet, attributions.parquet, run.json",
        ],
    )


def _cache_dir(cache: str | None) -> Path | None:
    from gmvaluator.embed.cache import default_cache_dir

    if cache is None:
        return default_cache_dir()
    return None if cache.lower() == "none" else Path(cache)
