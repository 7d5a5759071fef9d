"""The ``gmvaluator`` command line. Progress goes to stderr, a short summary to stdout.

Exit codes: 0 ok, 1 failure, 2 bad input (one line naming the item and the fix).
"""

from __future__ import annotations

from typing import Annotated

import typer

from gmvaluator import __version__
from gmvaluator.cli import demo, evaluate, ledger, report, serve, top, value
from gmvaluator.cli.common import STATE, log_to_stderr

app = typer.Typer(
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
