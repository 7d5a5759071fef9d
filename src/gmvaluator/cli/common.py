"""What every command of the CLI shares: error handling and common options.

Command modules (``gmvaluator.cli.*``) import from here, and ``gmvaluator.cli`` registers
them, so that adding a command never means editing another command's code.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

STATE = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Print our own errors as one line and exit with their code; --debug shows tracebacks.

    Library errors speak of Python parameters and name them (``exc.param``); the line ends
    with this command's flags for those it has, e.g. ``(set with --k)``: typer names the flag
    of parameter ``n_candidates`` ``--n-candidates``, and ``random_state`` is ``--seed``.
    """
    own = inspect.signature(func).parameters

    def flags(params: tuple[str, ...]) -> str:
        names = [{"random_state": "seed"}.get(p, p) for p in params]
        found = ["--" + n.replace("_", "-") for n in names if n in own]
        return f" (set with {', '.join(found)})" if found else ""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from gmvaluator.errors import GMValuatorError

        try:
            return func(*args, **kwargs)
        except GMValuatorError as exc:
            if STATE["debug"]:
                raise
            typer.echo(f"error: {exc}{flags(exc.param)}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def setting_option(name: str, *decls: str, own_default: bool = False) -> Any:
    """The option of setting ``name``, with the help, choices and shown default that
    ``gmvaluator.config.ValueConfig`` declares for it.

    Its parameter defaults to None, so that only a given flag overrides the TOML file; with
    ``own_default`` the command has a default of its own, which help then shows.
    """
    from gmvaluator.config import help_text, shown_default

    shown: bool | str = True if own_default else (shown_default(name) or False)
    # typer shows this text as "[default: (TEXT)]"; brackets in help text itself would be
    # taken for rich markup and vanish
    return typer.Option(*decls, help=help_text(name), show_default=shown)


Embedder = Annotated[str | None, setting_option("embedder")]
K = Annotated[int | None, setting_option("k", "--k")]
Index = Annotated[str | None, setting_option("index")]
Metric = Annotated[str | None, setting_option("metric")]
Temperature = Annotated[str | None, setting_option("temperature")]
Credit = Annotated[str | None, setting_option("credit")]
Out = Annotated[Path, typer.Option("--out", help="Run folder to write.")]
Overwrite = Annotated[bool, typer.Option(help="Replace a run folder made with other settings.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]


def log_to_stderr() -> None:
    """Show the library's progress notes (the "gmvaluator" logger, INFO) on stderr, once."""
    import logging
    import sys

    logger = logging.getLogger("gmvaluator")
    if not any(getattr(h, "_gmvaluator_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._gmvaluator_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
