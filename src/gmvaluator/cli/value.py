"""``gmvaluator value``: value a training set against generated samples, or add a batch to a
finished run (``--append``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gmvaluator.cli.common import (
    Embedder,
    Index,
    K,
    Metric,
    Overwrite,
    Quiet,
    Temperature,
    handle_errors,
)
from gmvaluator.cli.report import ReportFlag, report_after_run


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
    quality: Annotated[
        str | None,
        typer.Option(
            help="Quality q_j: none, brisque, piqe, sharpness, maniqa[:WEIGHTS], file:CSV or a "
            "CSV of id,quality [none]."
        ),
    ] = None,
    quality_norm: Annotated[
        str | None,
        typer.Option(help="Quality scores to q_j: raw, minmax, rank or divide-by-max [raw]."),
    ] = None,
    rerank: Annotated[
        str | None,
        typer.Option(help="Distance d_ij: exact, none, sscd, sscd-distilled, lpips, dreamsim."),
    ] = None,
    cache: Annotated[
        str | None,
        typer.Option(help="Embedding cache folder shared by runs, or none [~/.cache/gmvaluator]."),
    ] = None,
    nprobe: Annotated[int | None, typer.Option(help="IVF lists probed per query.")] = None,
    n_candidates: Annotated[
        int | None, typer.Option(help="K': PQ candidates re-ranked exactly [max(10k, 100)].")
    ] = None,
    text_column: Annotated[str | None, typer.Option(help="Text column of Parquet/JSONL.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Embedding batch size [64].")] = None,
    embedding_dtype: Annotated[
        str | None, typer.Option(help="Stored embeddings: float32 or float16 [float32].")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed [0].")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file of settings.")] = None,
    on_error: Annotated[
        str, typer.Option(help="raise: stop at a bad item; skip: drop it, list it in skipped.csv.")
    ] = "raise",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    report: ReportFlag = False,
    target_recall: Annotated[
        float | None, typer.Option(help="index auto: recall@k to tune the index to [0.99].")
    ] = None,
    engine: Annotated[
        str, typer.Option(help="local, or ray: embed and search on a Ray cluster.")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address [start a local one].")
    ] = None,
) -> None:
    """Value every training item against the generated samples; write RUN/values.parquet."""
    from gmvaluator.config import load_config
    from gmvaluator.engines.ray.engine import open_engine
    from gmvaluator.errors import InputError
    from gmvaluator.rights.accounting import AccountingOptions
    from gmvaluator.run.pipeline import run_value

    if append is not None:
        from gmvaluator.run.append import append_command

        if train is not None or out is not None:
            raise InputError("--append RUN takes no --train or --out: the run folder has both.")

        append_command(append, generated, quality=quality, ledger=ledger, quiet=quiet)
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
    with open_engine(engine, address) as eng:
        outcome = run_value(
            train,
            generated,
            out,
            cfg,
            quality=quality,
            overwrite=overwrite,
            progress=not quiet,
            on_error=on_error,
            cache=_cache_dir(cache),
            accounting=AccountingOptions(
                contributors=None if contributors is None else str(contributors),
                opt_out=opt_out,
                near_copy_quantile=near_copy_quantile,
                near_copy_embedder=near_copy_embedder,
                ledger=ledger or "run",
            ),
            engine=eng,
        )
    r = outcome.result
    s = r.summary()
    typer.echo(
        f"valued {s['n_train']} training items against {s['n_generated']} generated samples "
        f"(k={s['k']}, index {r.config['index']['factory']}, recall@{s['k']} {r.recall:.3f})"
    )
    typer.echo(f"matched {s['n_matched']} of {s['n_train']} training items")
    if on_error == "skip":
        typer.echo(f"skipped {outcome.n_skipped} bad items (listed in {out}/skipped.csv)")
    typer.echo(f"wrote {out}/values.parquet, attributions.parquet, config.json, run.json")
    if report:
        report_after_run(out)


def _cache_dir(cache: str | None) -> Path | None:
    from gmvaluator.embed.cache import default_cache_dir

    if cache is None:
        return default_cache_dir()
    return None if cache.lower() == "none" else Path(cache)
