"""The ledger's schema and the queries shared by its SQLite and PostgreSQL stores.

One table, ``credits``: one row per (run, generated sample, rank), i.e. per credit handed from a
generated sample to one of its matched training items, with the evidence behind it. Rows are
only ever inserted; a row that exists already (same run id, generated id and rank) is skipped,
so recording a run twice never counts it twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gmvaluator.errors import InputError

#: Columns of ``credits`` in order, with their SQL types (SQLite, PostgreSQL).
COLUMNS: dict[str, tuple[str, str]] = {
    "run_id": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "generated_id": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "generated_sha256": ("TEXT", "TEXT"),
    "rank": ("INTEGER NOT NULL", "INTEGER NOT NULL"),
    "train_id": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "contributor": ("TEXT", "TEXT"),
    "licence": ("TEXT", "TEXT"),
    "distance": ("REAL NOT NULL", "DOUBLE PRECISION NOT NULL"),
    "quality": ("REAL NOT NULL", "DOUBLE PRECISION NOT NULL"),
    "credit": ("REAL NOT NULL", "DOUBLE PRECISION NOT NULL"),
    "near_copy": ("INTEGER NOT NULL", "INTEGER NOT NULL"),
    "index_version": ("TEXT", "TEXT"),
    "embedder": ("TEXT", "TEXT"),
    "settings_sha256": ("TEXT", "TEXT"),
    "recorded_at": ("TEXT NOT NULL", "TEXT NOT NULL"),
}
KEY = ("run_id", "generated_id", "rank")
GROUP_BY = ("contributor", "train_id", "run_id")


class Ledger:
    """An append-only store of credits behind a DB-API connection.

    Subclasses open the connection, create the schema and say how parameters are written.
    """

    placeholder = "?"
    target = ""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    # -- writing --------------------------------------------------------------------------
    def append(self, credits: pd.DataFrame) -> int:
        """Insert credit rows in one transaction; returns how many were new."""
        missing = [c for c in COLUMNS if c not in credits.columns]
        if missing:
            raise InputError(f"credit rows lack columns {missing}; build them with credit_rows().")
        rows = [
            tuple(_plain(v) for v in row)
            for row in credits[list(COLUMNS)].itertuples(index=False, name=None)
        ]
        if not rows:
            return 0
        cols = ", ".join(COLUMNS)
        marks = ", ".join([self.placeholder] * len(COLUMNS))
        sql = (
            f"INSERT INTO credits ({cols}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(KEY)}) DO NOTHING"
        )
        return self._insert(sql, rows)

    def _insert(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        raise NotImplementedError

    # -- reading --------------------------------------------------------------------------
    def totals(self, run_id: str | None = None, by: str = "contributor") -> pd.DataFrame:
        """Who is owed what: summed credit per contributor (or training item, or run)."""
        if by not in GROUP_BY:
            raise InputError(f"cannot total by {by!r}; choose one of {list(GROUP_BY)}.")
        where, params = self._where(run_id=run_id)
        sql = (
            f"SELECT COALESCE({by}, '') AS {by}, SUM(credit) AS value, "
            "COUNT(DISTINCT train_id) AS n_items, COUNT(DISTINCT generated_id) AS n_generated, "
            f"COUNT(*) AS n_credits, SUM(near_copy) AS n_near_copy FROM credits{where} "
            f"GROUP BY COALESCE({by}, '') ORDER BY value DESC, {by}"
        )
        df = self._query(sql, params)
        return df.astype({c: np.int64 for c in ("n_items", "n_generated", "n_credits")})

    def explain(self, generated_id: str, run_id: str | None = None) -> pd.DataFrame:
        """Why a generated sample credited what it did: its matches with their evidence."""
        where, params = self._where(generated_id=generated_id, run_id=run_id)
        return self._query(f"SELECT * FROM credits{where} ORDER BY run_id, rank", params)

    def export(self, run_id: str | None = None) -> pd.DataFrame:
        """Every credit row (of one run, or of all)."""
        where, params = self._where(run_id=run_id)
        return self._query(
            f"SELECT * FROM credits{where} ORDER BY run_id, generated_id, rank", params
        )

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) AS n FROM credits", [])["n"].iloc[0])

    def _where(self, **conds: str | None) -> tuple[str, list[Any]]:
        given = {k: v for k, v in conds.items() if v is not None}
        if not given:
            return "", []
        clause = " AND ".join(f"{k} = {self.placeholder}" for k in given)
        return f" WHERE {clause}", list(given.values())

    def _query(self, sql: str, params: list[Any]) -> pd.DataFrame:
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        finally:
            cur.close()
        self._end_read()
        return pd.DataFrame(rows, columns=names).drop(columns=["seq"], errors="ignore")

    def _end_read(self) -> None:
        """Close the read transaction a driver may have opened."""

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def schema_sql(dialect: int) -> str:
    """``CREATE TABLE`` of the credits table; ``dialect`` 0 is SQLite, 1 PostgreSQL."""
    seq = "seq INTEGER PRIMARY KEY AUTOINCREMENT" if dialect == 0 else "seq BIGSERIAL PRIMARY KEY"
    cols = ",\n  ".join(f"{name} {types[dialect]}" for name, types in COLUMNS.items())
    return (
        f"CREATE TABLE IF NOT EXISTS credits (\n  {seq},\n  {cols},\n  UNIQUE ({', '.join(KEY)})\n)"
    )


#: Indexes for ``explain`` (by generated id) and ``totals`` (by contributor).
INDEXES = (
    "CREATE INDEX IF NOT EXISTS credits_generated ON credits (generated_id)",
    "CREATE INDEX IF NOT EXISTS credits_contributor ON credits (contributor)",
)


def _plain(v: Any) -> Any:
    """numpy scalars as Python ones, which every driver accepts."""
    if isinstance(v, np.generic):
        return v.item()
    return v
