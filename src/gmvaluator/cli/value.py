"""``gmvaluator value``: value a training set against generated samples, or add a batch to a
finished run (``--append``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    handle_errors,
    setting_option,
)
from gmvaluator.cli.report import ReportFlag, report_after_run

if TYPE_CHECKING:
    from gmvaluator.core.result import ValuationResult
    from gmvaluator.run.pipeline import RunOutcome


def register(app: typer.Typer) -> None:
    app.command()(value)


@handle_errors
def value(
    generated: Annotated[str, typer.Option(help="Generated source: path or builtin:NAME.")],
    train: Annotated[
        str | None, typer.Option(help="Training source: path or builtin:NAME.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder to write.")] = None,
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
    batch_size: Annotated[int | None, setting_option("batch_size")] = None,
    embedding_dtype: Annotated[str | None, setting_option("embedding_dtype")] = None,
    seed: Annotated[int | None, setting_option("seed")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file of settings.")] = None,
    on_error: Annotated[
        str, typer.Option(help="raise: stop at a bad item; skip: drop it, list it in skipped.csv.")
    ] = "raise",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    report: ReportFlag = False,
    target_recall: Annotated[float | None, setting_option("target_recall")] = None,
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
        if train is not None or out is not None:
            raise InputError("--append RUN takes no --train or --out: the run folder has both.")
        _append(append, generated, quality=quality, ledger=ledger, quiet=quiet)
        if report:
            report_after_run(append)
        return
    if train is None or out is None:
        raise InputError("value needs --train and --out (or --append RUN to extend a run).")

    cfg = load_config(
        config,
        embedder=embedder,
        k=k,
        index=index,
        metric=metric,
        temperature=temperature,
        credit=credit,
        nprobe=nprobe,
        n_candidates=n_candidates,
        text_column=text_column,
        batch_size=batch_size,
        embedding_dtype=embedding_dtype,
        seed=seed,
        rerank=rerank,
        quality_norm=quality_norm,
        target_recall=target_recall,
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
    if report:
        report_after_run(out)


def _print_run(outcome: RunOutcome, out: Path, skipped: bool) -> None:
    """The summary of a finished ``value`` run."""
    r = outcome.result
    s = r.summary()
    typer.echo(
        f"valued {s['n_train']} training items against {s['n_generated']} generated samples "
        f"(k={s['k']}, index {r.config['index']['factory']}, recall@{s['k']} {r.recall:.3f})"
    )
    typer.echo(f"matched {s['n_matched']} of {s['n_train']} training items")
    typer.echo(credit_line(r))
    if skipped:
        typer.echo(f"skipped {outcome.n_skipped} bad items (listed in {out}/skipped.csv)")
    typer.echo(f"wrote {out}/values.parquet, attributions.parquet, config.json, run.json")


def _append(
    run: Path, generated: str, *, quality: str | None, ledger: str | None, quiet: bool
) -> None:
    """``value --append RUN --generated NEW``: append the batch, then print a summary."""
    from gmvaluator.run.append import append_run

    out = append_run(run, generated, quality=quality, ledger=ledger, progress=not quiet)
    s = out.result.summary()
    near = out.batch.near_copy
    flagged = int(near.any(axis=1).sum()) if near is not None else 0
    typer.echo(
        f"appended {len(out.batch.generated_ids)} generated samples to {run} (batch "
        f"{out.batch_number}); the run now values {s['n_train']} training items against "
        f"{s['n_generated']} generated samples"
    )
    typer.echo(f"matched {s['n_matched']} of {s['n_train']} training items; {flagged} near copies")
    typer.echo(credit_line(out.result))
    typer.echo(f"ledger: {out.ledger_rows_added} new credits")
    typer.echo(f"wrote {run}/values.parquet, attributions.parquet, run.json")


def credit_line(result: ValuationResult) -> str:
    """One line on the credit rule and what it left unattributed."""
    c = result.credit_summary()
    line = f"credit: {c.get('credit', 'paper')}, T = {temperature_text(c)}"
    if c.get("credit") == "calibrated":
        line += (
            "; unattributed "
            f"{100 * c['unattributed_fraction']:.1f} % of the credit, {c['far_samples']} "
            "generated samples far from all training data; rank by value and density"
        )
    return line


def temperature_text(credit: dict[str, Any]) -> str:
    """T as people read it: a number, or the per-sample rule of ``auto``."""
    from gmvaluator.core.calibration import TEMPERATURE_FACTOR

    t = credit.get("temperature", 1.0)
    if t != "auto":
        return f"{float(t):.4g}"
    floor = credit.get("temperature_floor", 0.0)
    return f"{TEMPERATURE_FACTOR:g} x each sample's best-match distance (at least {floor:.3g})"


def _cache_dir(cache: str | None) -> Path | None:
    from gmvaluator.embed.cache import default_cache_dir

    if cache is None:
        return default_cache_dir()
    return None if cache.lower() == "none" else Path(cache)
