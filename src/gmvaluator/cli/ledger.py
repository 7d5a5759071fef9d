"""``gmvaluator ledger``: who is owed what, and why, from the ledger of credits.

Every command takes the ledger as ``RUN`` (a run folder: its ``ledger.sqlite``), or as
``--ledger`` (the same, an SQLite file or a ``postgresql://`` URL). Given a run folder, totals,
explain and export read that run's own credits (its ``run_id`` in ``run.json``) and say which
other runs' credits the ledger holds; ``--all-runs`` reads them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gmvaluator.cli.common import handle_errors

if TYPE_CHECKING:
    import pandas as pd

    from gmvaluator.rights.ledger import Ledger

Run = Annotated[
    str | None,
    typer.Argument(
        help="A run folder (its ledger.sqlite), an SQLite ledger file or a postgresql:// URL.",
        show_default=False,
    ),
]
LedgerTarget = Annotated[
    str | None,
    typer.Option("--ledger", help="The ledger, as RUN gives it (for those who name it so).",
                 show_default=False),
]  # fmt: skip
RunId = Annotated[str | None, typer.Option("--run-id", help="Only this run's credits.")]
AllRuns = Annotated[
    bool,
    typer.Option("--all-runs", help="Every run's credits, not only the run folder's own run."),
]

ledger_app = typer.Typer(
    help="Query and check the append-only ledger of credits: totals, explain, export, verify.",
    no_args_is_help=True,
)

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")


def _target(run: str | None, ledger: str | None) -> str:
    from gmvaluator.errors import InputError

    if run is not None and ledger is not None and run != ledger:
        raise InputError(f"give the ledger once: RUN ({run}) or --ledger ({ledger}), not both.")
    target = run if run is not None else ledger
    if target is None:
        raise InputError(
            "name the ledger: a run folder (RUN), an SQLite ledger file or a postgresql:// URL."
        )
    return target


def _open(target: str) -> Ledger:
    from gmvaluator.errors import InputError
    from gmvaluator.rights.ledger import is_url, open_ledger, resolve_target

    resolved = resolve_target(target)
    if not is_url(target) and not Path(resolved).is_file():
        raise InputError(
            f"no ledger at {resolved}. Give a run folder written by `gmvaluator value`, an "
            "SQLite ledger file or a postgresql:// URL."
        )
    return open_ledger(target)


def _scope(target: str, run_id: str | None, all_runs: bool) -> str | None:
    """The run whose credits to read: ``--run-id``; else, for a run folder, its current run
    (unless ``--all-runs``); else every run (None)."""
    from gmvaluator.errors import InputError
    from gmvaluator.files import read_json
    from gmvaluator.rights.ledger import is_url
    from gmvaluator.run.folder import RECORD

    if run_id is not None and all_runs:
        raise InputError("give --run-id or --all-runs, not both.")
    if run_id is not None or all_runs or is_url(target):
        return run_id
    record = Path(target) / RECORD
    if not record.is_file():
        return None
    current = read_json(record).get("run_id")
    return None if current is None else str(current)


def _say_other_runs(led: Ledger, scope: str | None) -> None:
    """A note on stderr when the ledger holds credits of runs left out, or adds up several."""
    runs = led.run_ids()
    if len(runs) <= 1 and (scope is None or scope in set(runs["run_id"])):
        return
    others = runs[runs["run_id"] != scope] if scope is not None else runs
    listed = ", ".join(
        f"{r.run_id} ({r.n_credits} credits, {r.value:.6g} in all)"
        for r in others.head(10).itertuples()
    )
    more = f" and {len(others) - 10} more" if len(others) > 10 else ""
    if scope is None:
        typer.echo(f"note: these are the credits of {len(runs)} runs: {listed}{more}.", err=True)
    else:
        typer.echo(
            f"note: showing run {scope} only; the ledger also holds credits of other runs: "
            f"{listed}{more}. Pass --all-runs to include them.",
            err=True,
        )


def _print(df: pd.DataFrame) -> None:
    import pandas as pd

    with pd.option_context("display.width", 220, "display.max_colwidth", 48):
        typer.echo(df.to_string(index=False))


@ledger_app.command()
@handle_errors
def totals(
    run: Run = None,
    ledger: LedgerTarget = None,
    run_id: RunId = None,
    all_runs: AllRuns = False,
    by: Annotated[str, typer.Option(help="contributor, train_id or run_id.")] = "contributor",
    n: Annotated[int | None, typer.Option("-n", help="Show only the first N rows.")] = None,
) -> None:
    """Who is owed what: summed credit per contributor (highest first)."""
    target = _target(run, ledger)
    scope = _scope(target, run_id, all_runs)
    with _open(target) as led:
        df = led.totals(run_id=scope, by=by)
        _say_other_runs(led, scope)
    if df.empty:
        typer.echo("the ledger holds no credits" + (f" for run {scope}" if scope else ""))
        return
    _print(df if n is None else df.head(n))


@ledger_app.command()
@handle_errors
def explain(
    generated_id: Annotated[str, typer.Argument(help="Id of a generated sample.")],
    run: Run = None,
    ledger: LedgerTarget = None,
    run_id: RunId = None,
    all_runs: AllRuns = False,
) -> None:
    """Why a generated sample credited what it did: its matches and their evidence."""
    from gmvaluator.errors import InputError

    target = _target(run, ledger)
    scope = _scope(target, run_id, all_runs)
    with _open(target) as led:
        df = led.explain(generated_id, run_id=scope)
        _say_other_runs(led, scope)
    if df.empty:
        raise InputError(
            f"the ledger has no credits from generated sample {generated_id!r}"
            + (f" in run {scope}" if scope else "")
            + ". Check the id (see `gmvaluator ledger export`)"
            + (", or pass --all-runs." if scope else ".")
        )
    cols = ["run_id", "rank", "train_id", "contributor", "distance", "quality", "credit",
            "near_copy", "generated_sha256", "index_version", "recorded_at"]  # fmt: skip
    _print(df[cols])


@ledger_app.command()
@handle_errors
def export(
    out: Annotated[Path, typer.Option("--out", help="A .csv or .parquet file to write.")],
    run: Run = None,
    ledger: LedgerTarget = None,
    run_id: RunId = None,
    all_runs: AllRuns = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Write the credits (of the run, of one run, or all) to CSV or Parquet. In CSV, a text
    cell that a spreadsheet would take for a formula (= + - @) is written with a leading '."""
    from gmvaluator.errors import InputError
    from gmvaluator.files import atomic_path

    if out.suffix not in (".csv", ".parquet"):
        raise InputError(f"--out {out} must end in .csv or .parquet.")
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists. Choose another --out or pass --overwrite.")
    target = _target(run, ledger)
    scope = _scope(target, run_id, all_runs)
    with _open(target) as led:
        df = led.export(run_id=scope)
        _say_other_runs(led, scope)
    with atomic_path(out) as tmp:
        if out.suffix == ".csv":
            neutralise_formulas(df).to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    typer.echo(f"wrote {len(df)} credits to {out}")


@ledger_app.command()
@handle_errors
def verify(
    run: Run = None,
    ledger: LedgerTarget = None,
    head: Annotated[
        str | None,
        typer.Option(help="A chain head printed by an earlier verify: it must still be there."),
    ] = None,
) -> None:
    """Check the hash chain of every row and the append-only triggers; name what was changed."""
    from gmvaluator.errors import GMValuatorError

    target = _target(run, ledger)
    with _open(target) as led:
        found = led.verify()
        heads = None if head is None else led.has_hash(head)
        where = led.target
    problems = list(found.problems)
    if head is not None and not heads:
        problems.append(
            f"the earlier chain head {head} is no longer in the ledger: rows up to it were "
            "changed and the chain after them rewritten"
        )
    if problems:
        for line in problems:
            typer.echo(f"tampered: {line}")
        raise GMValuatorError(
            f"the ledger {where} failed verification: {len(problems)} problem(s), listed above."
        )
    old = f" ({found.unchained} older rows have no hashes)" if found.unchained else ""
    typer.echo(f"ledger {where}: {found.rows} rows, hash chain and triggers intact{old}")
    typer.echo(f"chain head: {found.head} (keep it; `verify --head` checks it is still there)")


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell that starts like a formula prefixed by ``'``."""
    import pandas as pd

    out = df.copy()
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = [
                "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v
                for v in out[col]
            ]
    return out
