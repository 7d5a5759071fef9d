"""``gmvaluator serve RUN``: the attribution service over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gmvaluator.cli.common import handle_errors
from gmvaluator.service import MAX_BYTES


def register(app: typer.Typer) -> None:
    app.command()(serve)


@handle_errors
def serve(
    run: Annotated[Path, typer.Argument(help="Run folder written by `gmvaluator value`.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    max_bytes: Annotated[
        int, typer.Option(help="Largest request body accepted; larger ones get 413.")
    ] = MAX_BYTES,
    ledger: Annotated[
        str, typer.Option(help="Where record=true requests go: run, a file, a URL, or none.")
    ] = "run",
) -> None:
    """Answer "whose data does this generated sample credit" over HTTP (OpenAPI at /docs)."""
    import uvicorn

    from gmvaluator.errors import InputError
    from gmvaluator.service.http import create_app

    if max_bytes < 1:
        raise InputError(f"--max-bytes must be at least 1; got {max_bytes}.")
    app = create_app(run, max_bytes=max_bytes, ledger=ledger)
    typer.echo(f"serving {run} on http://{host}:{port} (OpenAPI schema at /openapi.json)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
