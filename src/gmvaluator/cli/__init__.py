"""The ``gmvaluator`` command line: ``app`` (the typer application) and one module per command.

Library modules below never print or know about flags; the commands here turn their results
into a short summary on stdout and their errors into one line and an exit code.
"""

from __future__ import annotations

from gmvaluator.cli.app import app, run

__all__ = ["app", "run"]
