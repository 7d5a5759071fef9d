"""The embedded ledger: one SQLite file in WAL mode, safe for several writing processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from gmvaluator.errors import InputError
from gmvaluator.rights.ledger.base import CHAIN, INDEXES, Ledger, schema_sql

#: Seconds a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT_S = 60.0

_APPEND_ONLY = """
CREATE TRIGGER IF NOT EXISTS credits_no_update BEFORE UPDATE ON credits
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: credits cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS credits_no_delete BEFORE DELETE ON credits
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: credits cannot be deleted'); END;
CREATE TRIGGER IF NOT EXISTS credits_no_replace BEFORE INSERT ON credits
WHEN EXISTS (SELECT 1 FROM credits WHERE seq = NEW.seq OR (run_id = NEW.run_id
             AND generated_id = NEW.generated_id AND rank = NEW.rank))
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: credits cannot be replaced'); END;
"""
GUARDS = ("credits_no_update", "credits_no_delete", "credits_no_replace")


class SQLiteLedger(Ledger):
    placeholder = "?"
    guards = GUARDS

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
        script = f"BEGIN IMMEDIATE;\n{schema_sql(0)};\n{indexes}{_add_chain(conn)}COMMIT;"
        self._write(lambda c: c.executescript(script))
        if self._needs_guards():
            self._write(lambda c: c.executescript(f"BEGIN IMMEDIATE;\n{_APPEND_ONLY}COMMIT;"))

    def _needs_guards(self) -> bool:
        """Whether to create the triggers: on a new (empty) ledger, or one made before the
        hash chain and its third trigger. A ledger whose triggers were dropped since keeps
        them dropped, for ``verify`` to report, rather than have them silently back."""
        have = self.present_guards()
        if set(GUARDS) <= have:
            return False
        one = self.conn.execute("SELECT COUNT(*), COUNT(row_hash) FROM credits").fetchone()
        older = {"credits_no_update", "credits_no_delete"} <= have and one[1] == 0
        return bool(one[0] == 0 or older)

    def present_guards(self) -> set[str]:
        rows = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'credits'"
        ).fetchall()
        return {r[0] for r in rows}

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
            chained = self._chained(lambda q, p: conn.execute(q, p).fetchall(), rows)
            conn.executemany(sql, chained)
            conn.execute("COMMIT")
            return len(chained)

        return int(self._write(run))


def _add_chain(conn: sqlite3.Connection) -> str:
    """``ALTER TABLE`` statements that give a ledger made before the hash chain its columns
    (its old rows stay unchained); empty for a new or current ledger."""
    try:
        have = {r[1] for r in conn.execute("PRAGMA table_info(credits)").fetchall()}
    except sqlite3.DatabaseError:
        return ""
    if not have:
        return ""
    return "".join(f"ALTER TABLE credits ADD COLUMN {c} TEXT;\n" for c in CHAIN if c not in have)
