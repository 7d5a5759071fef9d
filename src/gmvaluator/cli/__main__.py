"""``python -m gmvaluator.cli``: the command line."""

from gmvaluator.cli.app import run

run()
