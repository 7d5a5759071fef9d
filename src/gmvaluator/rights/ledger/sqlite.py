"""The embedded ledger: one SQLite file in WAL mode, safe for several writing processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from gmvaluator.errors import InputError
from gmvaluator.rights.ledger.base import INDEXES, Ledger, schema_sql

#: Seconds a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT_S = 60.0

_APPEND_ONLY = """
CREATE TRIGGER IF NOT EXISTS credits_no_update BEFORE UPDATE ON credits
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: credits cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS credits_no_delete BEFORE DELETE ON credits
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: credits cannot be deleted'); END;
"""


class SQLiteLedger(Ledger):
    placeholder = "?"

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir():
            raise InputError(
                f"ledger path {path} is a folder; give a file such as {path}/ledger.sqlite."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level None: transactions are opened explicitly with BEGIN IMMEDIATE;
            # callers that share one ledger between threads serialise its use themselves.
            conn = sqlite3.connect(
                str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            raise InputError(f"cannot open ledger {path}: {exc}. Is it an SQLite file?") from exc
        super().__init__(conn)
        self.target = str(path)
        indexes = "".join(f"{sql};\n" for sql in INDEXES)
        script = f"BEGIN IMMEDIATE;\n{schema_sql(0)};\n{indexes}{_APPEND_ONLY}COMMIT;"
        self._write(lambda c: c.executescript(script))

    def _write(self, fn: Any) -> Any:
        try:
            return fn(self.conn)
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def _insert(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        def run(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            before = conn.total_changes
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
            return conn.total_changes - before

        return int(self._write(run))
