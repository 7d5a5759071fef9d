"""The shared ledger: a PostgreSQL database reached by a connection URL (psycopg 3)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gmvaluator.errors import InputError, MissingDependencyError
from gmvaluator.rights.ledger.base import INDEXES, Ledger, schema_sql

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


class PostgresLedger(Ledger):
    placeholder = "%s"

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

    def _insert(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(sql, rows)
            return int(cur.rowcount)

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
