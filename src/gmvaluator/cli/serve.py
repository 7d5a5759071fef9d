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
    token: Annotated[
        str | None,
        typer.Option(
            help="Token every request must send as 'Authorization: Bearer TOKEN' "
            "[GMVALUATOR_SERVICE_TOKEN]. Needed to record credits and to listen beyond "
            "this machine.",
            show_default=False,
        ),
    ] = None,
    max_quality: Annotated[
        float | None,
        typer.Option(help="Highest quality a request may send [1, or the run's highest]."),
    ] = None,
) -> None:
    """Answer "whose data does this generated sample credit" over HTTP (API page at /docs)."""
    import math

    import uvicorn

    from gmvaluator import env
    from gmvaluator.errors import InputError
    from gmvaluator.service.http import create_app

    if max_bytes < 1:
        raise InputError(f"--max-bytes must be at least 1; got {max_bytes}.")
    if max_quality is not None and not (math.isfinite(max_quality) and max_quality > 0):
        raise InputError(f"--max-quality must be a finite number above 0; got {max_quality}.")
    token = token or env.SERVICE_TOKEN.text()
    if not is_loopback(host) and token is None:
        raise InputError(
            f"--host {host} would let other machines reach the service, and no token is set. "
            "Pass --token (or set GMVALUATOR_SERVICE_TOKEN), or listen on 127.0.0.1."
        )
    app = create_app(run, max_bytes=max_bytes, ledger=ledger, token=token, max_quality=max_quality)
    guard = "token required" if token else "no token: lookups only, record=true refused"
    typer.echo(f"serving {run} on http://{host}:{port} ({guard}; API at /docs)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
