"""What every command of the CLI shares: error handling and common options.

Command modules (``gmvaluator.cli.*``) import from here, and ``gmvaluator.cli`` registers
them, so that adding a command never means editing another command's code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

STATE = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Print our own errors as one line and exit with their code; --debug shows tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from gmvaluator.errors import GMValuatorError

        try:
            return func(*args, **kwargs)
        except GMValuatorError as exc:
            if STATE["debug"]:
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


Embedder = Annotated[
    str | None,
    typer.Option(
        help="pixels, efficientnet-lite0, minilm or precomputed [default: by source kind]."
    ),
]
K = Annotated[int | None, typer.Option("--k", help="Training matches per generated sample [10].")]
Index = Annotated[str | None, typer.Option(help="auto, exact, pq or ivfpq [auto].")]
Metric = Annotated[str | None, typer.Option(help="cosine or sqeuclidean [cosine].")]
Temperature = Annotated[float | None, typer.Option(help="Softmax temperature T [1.0].")]
Out = Annotated[Path, typer.Option("--out", help="Run folder to write.")]
Overwrite = Annotated[bool, typer.Option(help="Replace a run folder made with other settings.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]
