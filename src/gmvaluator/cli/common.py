"""What every command of the CLI shares: error handling and common options.

Command modules (``gmvaluator.cli.*``) import from here, and ``gmvaluator.cli`` registers
them, so that adding a command never means editing another command's code.
"""

from __future__ import annotations

import functools
import inspect
import typing
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


def config_table(func: F) -> F:
    """Let the TOML file of ``--config`` give any flag of the command by its name (``on_error``
    for ``--on-error``): a flag given on the command line wins over the file, the file over
    the flag's default. Settings (``gmvaluator.config.ValueConfig``) reach the command the same
    way, as if given as flags; ``load_config`` then adds those that have no flag."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from gmvaluator.config import read_value_table

        path = kwargs.get("config")
        ctx = _current_context()
        if path is None or ctx is None:
            return func(*args, **kwargs)
        table = read_value_table(path, command_keys())
        hints = typing.get_type_hints(func)
        path_params = {n for n, t in hints.items() if Path in typing.get_args(t) or t is Path}
        for param in ctx.command.params:
            name = param.name
            if name is None or name not in table or name == "config" or name not in kwargs:
                continue
            source = ctx.get_parameter_source(name)
            if source is not None and source.name != "DEFAULT":
                continue  # given on the command line
            value = table[name]
            kwargs[name] = Path(value) if name in path_params and value is not None else value
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def command_keys() -> tuple[str, ...]:
    """The parameter names of the command being run (none outside a command)."""
    ctx = _current_context()
    return () if ctx is None else tuple(p.name for p in ctx.command.params if p.name)


def _current_context() -> Any:
    """The context of the command being run, or None."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # typer before it carried its own copy of click
        from click import get_current_context  # type: ignore[no-redef]
    return get_current_context(silent=True)


def setting_option(name: str, *decls: str, own_default: bool = False) -> Any:
    """The option of setting ``name``, with the help, choices and shown default that
    ``gmvaluator.config.ValueConfig`` declares for it.

    Its parameter defaults to None, so that only a given flag overrides the TOML file; with
    ``own_default`` the command has a default of its own, which help then shows.
    """
    from gmvaluator.config import help_text, shown_default

    shown: bool | str = True if own_default else (shown_default(name) or False)
    # brackets in help text would be taken for rich markup and vanish: the root command group
    # states every default as "(default: TEXT)" (gmvaluator.cli.app.show_defaults)
    text = EMBEDDER_HELP if name == "embedder" else help_text(name)
    return typer.Option(*decls, help=text, show_default=shown)


#: Where help lists the embedders: filled from the registry when a command is resolved, so
#: that ``gmvaluator --help`` need not import it (``embedder_names``).
EMBEDDERS = "{embedders}"
EMBEDDER_HELP = f"Embedder: {EMBEDDERS}."
#: The local models the registry loads besides its named embedders.
HUB_EMBEDDERS = ("hf:PATH", "timm:NAME=WEIGHTS", "open_clip:NAME=WEIGHTS")


def embedder_names() -> str:
    """Every embedder the registry accepts, as help lists them."""
    from gmvaluator.embed.registry import known_embedders

    return ", ".join([*known_embedders(), *HUB_EMBEDDERS])


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
