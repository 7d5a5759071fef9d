"""``gmvaluator ledger``: who is owed what, and why, from the ledger of credits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gmvaluator.cli.common import handle_errors

LedgerTarget = Annotated[
    str,
    typer.Option(
        "--ledger", help="A run folder (its ledger.sqlite), an SQLite file or a postgresql:// URL."
    ),
]
RunId = Annotated[str | None, typer.Option("--run-id", help="Only this run's credits.")]

ledger_app = typer.Typer(
    help="Query the append-only ledger of credits: totals, explain, export.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")


def _open(target: str):  # type: ignore[no-untyped-def]
    from gmvaluator.errors import InputError
    from gmvaluator.rights.ledger import is_url, open_ledger, resolve_target

    resolved = resolve_target(target)
    if not is_url(target) and not Path(resolved).is_file():
        raise InputError(
            f"no ledger at {resolved}. Give a run folder written by `gmvaluator value`, an "
            "SQLite ledger file or a postgresql:// URL."
        )
    return open_ledger(target)


def _print(df) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    with pd.option_context("display.width", 220, "display.max_colwidth", 48):
        typer.echo(df.to_string(index=False))


@ledger_app.command()
@handle_errors
def totals(
    ledger: LedgerTarget,
    run_id: RunId = None,
    by: Annotated[str, typer.Option(help="contributor, train_id or run_id.")] = "contributor",
    n: Annotated[int | None, typer.Option("-n", help="Show only the first N rows.")] = None,
) -> None:
    """Who is owed what: summed credit per contributor (highest first)."""
    with _open(ledger) as led:
        df = led.totals(run_id=run_id, by=by)
    if df.empty:
        typer.echo("the ledger holds no credits" + (f" for run {run_id}" if run_id else ""))
        return
    _print(df if n is None else df.head(n))


@ledger_app.command()
@handle_errors
def explain(
    generated_id: Annotated[str, typer.Argument(help="Id of a generated sample.")],
    ledger: LedgerTarget,
    run_id: RunId = None,
) -> None:
    """Why a generated sample credited what it did: its matches and their evidence."""
    from gmvaluator.errors import InputError

    with _open(ledger) as led:
        df = led.explain(generated_id, run_id=run_id)
    if df.empty:
        raise InputError(
            f"the ledger has no credits from generated sample {generated_id!r}. Check the id "
            "(see `gmvaluator ledger export`)."
        )
    cols = ["run_id", "rank", "train_id", "contributor", "distance", "quality", "credit",
            "near_copy", "generated_sha256", "index_version", "recorded_at"]  # fmt: skip
    _print(df[cols])


@ledger_app.command()
@handle_errors
def export(
    ledger: LedgerTarget,
    out: Annotated[Path, typer.Option("--out", help="A .csv or .parquet file to write.")],
    run_id: RunId = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Write every credit (of one run, or all) to CSV or Parquet."""
    from gmvaluator.errors import InputError
    from gmvaluator.files import atomic_path

    if out.suffix not in (".csv", ".parquet"):
        raise InputError(f"--out {out} must end in .csv or .parquet.")
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists. Choose another --out or pass --overwrite.")
    with _open(ledger) as led:
        df = led.export(run_id=run_id)
    with atomic_path(out) as tmp:
        if out.suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    typer.echo(f"wrote {len(df)} credits to {out}")
