"""The ``gmvaluator`` command line. Progress goes to stderr, a short summary to stdout.

Exit codes: 0 ok, 1 failure, 2 bad input (one line naming the item and the fix).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from gmvaluator import __version__
from gmvaluator.cli import demo, evaluate, ledger, report, serve, top, value
from gmvaluator.cli.common import EMBEDDERS, STATE, embedder_names, log_to_stderr


class Group(TyperGroup):
    """The root command group: it states every default of every command one way
    (``show_defaults``) before help or parsing sees the command."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            show_defaults(command)
        return command


def show_defaults(command: Any) -> None:
    """Write each option's default at the end of its help as ``(default: X)``, the one form
    help uses, and turn off typer's own ``[default: ...]``. Flags that are off unless given
    state no default; a default that a TOML file may change is the one the setting declares.
    Sub-commands of a group are done too; each command once."""
    if getattr(command, "_defaults_shown", False):
        return
    command._defaults_shown = True  # type: ignore[attr-defined]
    for param in command.params:
        if param.param_type_name != "option" or getattr(param, "hidden", False):
            continue
        if param.name == "help":
            continue
        help_text, text = _split_bracket_default(param.help or "")
        text = text or _default_text(param)
        if text is not None and "(default:" not in help_text:
            help_text = f"{help_text.rstrip()} (default: {text})"
        if EMBEDDERS in help_text:
            help_text = help_text.replace(EMBEDDERS, embedder_names())
        param.help = help_text
        param.show_default = False
    for sub in getattr(command, "commands", {}).values():  # typer's groups are not click's
        show_defaults(sub)


def _split_bracket_default(help_text: str) -> tuple[str, str | None]:
    """``"Ledger: a file [RUN/ledger.sqlite]."`` -> ``("Ledger: a file.", "RUN/ledger.sqlite")``:
    the older way help stated a default, which the help renderer would take for markup."""
    m = _BRACKET_DEFAULT.search(help_text)
    if m is None:
        return help_text, None
    return help_text[: m.start()].rstrip() + ".", m.group(1)


_BRACKET_DEFAULT = re.compile(r"\s\[([^\[\]]+)\]\.?\s*$")


def _default_text(param: Any) -> str | None:
    if isinstance(param.show_default, str):
        return param.show_default.strip("()")
    if param.show_default is False:
        return None
    default = param.default
    if param.is_flag and not param.secondary_opts:
        return None  # an on/off flag: off unless given
    if param.is_flag:
        return param.opts[0] if default else param.secondary_opts[0]
    if default is None or default == () or callable(default):
        return None
    if isinstance(default, (list, tuple)):
        return ",".join(map(str, default))
    return str(default.value if isinstance(default, Enum) else default)


app = typer.Typer(
    cls=Group,
    name="gmvaluator",
    help="Value the training data of a generative model from the samples it generated.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gmvaluator {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option(help="Show full tracebacks of errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Value the training data of a generative model from the samples it generated."""
    STATE["debug"] = debug
    log_to_stderr()


# One module per command, registered here in the order ``--help`` lists them.
for _module in (value, top, report, evaluate, ledger, serve, demo):
    _module.register(app)


def run() -> None:
    """Console-script entry point."""
    app(prog_name="gmvaluator")


if __name__ == "__main__":  # pragma: no cover
    run()
