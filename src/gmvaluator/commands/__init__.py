"""CLI commands in modules of their own. Each module defines ``register(app)``, which adds its
command(s) or sub-app to the main typer app; ``gmvaluator.cli`` calls every module's
``register`` in name order. Keep heavy imports inside the command functions."""
