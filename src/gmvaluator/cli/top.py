"""``gmvaluator top RUN``: the most (or least) valuable training items of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gmvaluator.cli.common import handle_errors


def register(app: typer.Typer) -> None:
    app.command()(top)


@handle_errors
def top(
    run: Annotated[Path, typer.Argument(help="Run folder written by `gmvaluator value`.")],
    n: Annotated[int, typer.Option("-n", help="How many items.")] = 10,
    least: Annotated[bool, typer.Option(help="Show the least valuable instead.")] = False,
) -> None:
    """Print the most (or least) valuable training items of a run."""
    import pandas as pd

    from gmvaluator.run.folder import RunFolder

    folder = RunFolder(run).require_finished("top")
    df = pd.read_parquet(folder.values).sort_values("rank", ascending=not least).head(n)
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        typer.echo(df.to_string(index=False))
