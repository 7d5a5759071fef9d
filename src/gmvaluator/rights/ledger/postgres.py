"""The shared ledger: a PostgreSQL database reached by a connection URL (psycopg 3)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gmvaluator.errors import InputError, MissingDependencyError
from gmvaluator.rights.ledger.base import CHAIN, INDEXES, Ledger, schema_sql

#: Key of the advisory lock under which the schema is created, so that two processes creating
#: it at once do not collide.
_SCHEMA_LOCK = 0x676D76616C

_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION gmvaluator_credits_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'the ledger is append-only: credits cannot be changed or deleted'; END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER credits_append_only BEFORE UPDATE OR DELETE ON credits
FOR EACH ROW EXECUTE FUNCTION gmvaluator_credits_append_only();
"""
_NO_TRUNCATE = """
CREATE TRIGGER credits_no_truncate BEFORE TRUNCATE ON credits
FOR EACH STATEMENT EXECUTE FUNCTION gmvaluator_credits_append_only();
"""
GUARDS = ("credits_append_only", "credits_no_truncate")


class PostgresLedger(Ledger):
    placeholder = "%s"
    guards = GUARDS

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise MissingDependencyError(
                "a PostgreSQL ledger needs psycopg 3: pip install 'gmvaluator[ledger]'."
            ) from exc
        try:
            conn = psycopg.connect(url, connect_timeout=10)
        except psycopg.Error as exc:
            raise InputError(
                f"cannot connect to the ledger at {redact(url)}: {exc}. Check the URL and "
                "that the server is running."
            ) from exc
        super().__init__(conn)
        self.target = redact(url)
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_LOCK])
            cur.execute("SELECT to_regclass('credits') IS NULL")
            row = cur.fetchone()
            if row is not None and row[0]:
                cur.execute(schema_sql(1))
                for sql in INDEXES:
                    cur.execute(sql)
                cur.execute(_APPEND_ONLY)
                cur.execute(_NO_TRUNCATE)
            else:  # a ledger made before the hash chain: its old rows stay unchained
                for col in CHAIN:
                    cur.execute(f"ALTER TABLE credits ADD COLUMN IF NOT EXISTS {col} TEXT")
                cur.execute("SELECT COUNT(row_hash) FROM credits")
                chained = cur.fetchone()
                if chained is not None and chained[0] == 0 and self._older_guards(cur):
                    cur.execute(_NO_TRUNCATE)

    def _older_guards(self, cur: Any) -> bool:
        cur.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'credits'::regclass AND NOT tgisinternal"
        )
        have = {r[0] for r in cur.fetchall()}
        return "credits_append_only" in have and "credits_no_truncate" not in have

    def present_guards(self) -> set[str]:
        rows = self._query(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'credits'::regclass "
            "AND NOT tgisinternal AND tgenabled <> 'D'",
            [],
        )
        return set(rows["tgname"])

    def _insert(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        with self.conn.transaction(), self.conn.cursor() as cur:
            # one writer at a time, so that each row chains to the one written before it
            cur.execute("LOCK TABLE credits IN SHARE ROW EXCLUSIVE MODE")

            def execute(q: str, p: Any) -> list[tuple[Any, ...]]:
                cur.execute(q, p)
                return cur.fetchall()

            chained = self._chained(execute, rows)
            if chained:
                cur.executemany(sql, chained)
            return len(chained)

    def _end_read(self) -> None:
        self.conn.commit()


def redact(url: str) -> str:
    """The URL without its password, fit for logs and run records."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))
