"""An append-only ledger of every credit a valuation hands out, with the evidence behind it.

``open_ledger(target)`` opens SQLite (a file path, or a run folder: ``RUN/ledger.sqlite``) or
PostgreSQL (a ``postgresql://`` URL). ``credit_rows`` (through a run's ``RunStamp``) turns a
valuation result into rows; the ledger answers ``totals`` (who is owed what), ``explain`` (why
one generated sample credited what it did) and ``export``.
"""

from __future__ import annotations

from pathlib import Path

from gmvaluator.rights.ledger.base import COLUMNS, Ledger
from gmvaluator.rights.ledger.records import RunStamp, credit_rows, item_hashes, run_id_of
from gmvaluator.rights.ledger.sqlite import SQLiteLedger

__all__ = [
    "COLUMNS",
    "Ledger",
    "RunStamp",
    "SQLiteLedger",
    "credit_rows",
    "describe_target",
    "is_url",
    "item_hashes",
    "open_ledger",
    "run_id_of",
]

LEDGER_FILE = "ledger.sqlite"


def is_url(target: str | Path) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def resolve_target(target: str | Path) -> str | Path:
    """A URL as it is; a folder (a run folder) means its ``ledger.sqlite``."""
    if is_url(target):
        return str(target)
    path = Path(target)
    return path / LEDGER_FILE if path.is_dir() else path


def open_ledger(target: str | Path) -> Ledger:
    """Open (and create, when new) the ledger at a path, a run folder or a PostgreSQL URL."""
    resolved = resolve_target(target)
    if isinstance(resolved, str):
        from gmvaluator.rights.ledger.postgres import PostgresLedger

        return PostgresLedger(resolved)
    return SQLiteLedger(resolved)


def describe_target(target: str | Path) -> str:
    """The target as recorded in run.json: paths as given, URLs without their password."""
    resolved = resolve_target(target)
    if isinstance(resolved, str):
        from gmvaluator.rights.ledger.postgres import redact

        return redact(resolved)
    return str(resolved)
