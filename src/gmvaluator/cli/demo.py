"""``gmvaluator demo``: train a reference VAE on real data, generate, value and summarise."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gmvaluator.cli.common import Overwrite, Quiet, handle_errors, setting_option
from gmvaluator.cli.report import ReportFlag, report_after_run


def register(app: typer.Typer) -> None:
    app.command()(demo)


@handle_errors
def demo(
    out: Annotated[Path, typer.Option("--out", help="Run folder to write.")] = Path("runs/demo"),
    data: Annotated[str, typer.Option(help="auto, fashion-mnist or digits.")] = "auto",
    per_class: Annotated[int, typer.Option(help="Generated samples per class.")] = 30,
    epochs: Annotated[int | None, typer.Option(help="VAE epochs [by data size].")] = None,
    embedder: Annotated[str, setting_option("embedder", own_default=True)] = "pixels",
    index: Annotated[str, setting_option("index", own_default=True)] = "ivfpq",
    k: Annotated[int, setting_option("k", "--k", own_default=True)] = 10,
    seed: Annotated[int, setting_option("seed", own_default=True)] = 0,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    report: ReportFlag = False,
) -> None:
    """Train a class-conditional VAE on real data, generate, value, and summarise."""
    from gmvaluator.config import ValueConfig
    from gmvaluator.evaluate.demo import demo_summary, format_summary, run_demo

    cfg = ValueConfig(embedder=embedder, index=index, k=k, seed=seed)
    result = run_demo(
        out,
        data=data,
        per_class=per_class,
        epochs=epochs,
        cfg=cfg,
        seed=seed,
        overwrite=overwrite,
        progress=not quiet,
    )
    typer.echo(format_summary(demo_summary(result)))
    typer.echo(f"wrote {out}/values.parquet, attributions.parquet, demo.json, run.json")
    if report:
        report_after_run(out)
