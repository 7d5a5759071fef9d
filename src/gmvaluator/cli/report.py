"""``gmvaluator report RUN``: write the HTML report of a finished run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gmvaluator.cli.common import handle_errors


def register(app: typer.Typer) -> None:
    app.command("report")(report)


@handle_errors
def report(
    run: Annotated[
        Path, typer.Argument(help="Run folder written by `gmvaluator value` or `demo`.")
    ],
    samples: Annotated[
        int, typer.Option(help="Generated samples shown with their contributors.")
    ] = 40,
    items: Annotated[int, typer.Option(help="Most and least valuable training items shown.")] = 20,
    contributors: Annotated[int, typer.Option(help="Rows of the contributor leaderboard.")] = 25,
    near_copy: Annotated[
        float | None, typer.Option(help="Flag matches closer than this distance as near copies.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing report.")] = False,
) -> None:
    """Write RUN/report/index.html: one self-contained page to read a run's attributions."""
    from gmvaluator.report import ReportConfig, write_report

    cfg = ReportConfig(samples=samples, items=items, contributors=contributors, near_copy=near_copy)
    written = write_report(run, cfg, overwrite=overwrite, progress=True)
    typer.echo(f"wrote {written.path} ({written.n_bytes / 1e6:.1f} MB)")


ReportFlag = Annotated[
    bool, typer.Option("--report", help="Also write RUN/report/index.html (replacing one there).")
]


def report_after_run(run: Path, progress: bool = True) -> None:
    """The ``--report`` flag of ``value`` and ``demo``: the report of the run just written."""
    from gmvaluator.report import write_report

    written = write_report(run, overwrite=True, progress=progress)
    typer.echo(f"wrote {written.path} ({written.n_bytes / 1e6:.1f} MB)")


def mark_report_stale(run: Path, reason: str) -> None:
    """After a run changed: a banner on its report, if it has one, saying it is out of date."""
    if not (run / "report" / "index.html").is_file():
        return
    from gmvaluator.report import mark_stale

    marked = mark_stale(run, reason)
    typer.echo(f"marked {marked} out of date; rebuild it with: gmvaluator report {run} --overwrite")
