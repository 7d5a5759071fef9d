"""The ledger's schema and the queries shared by its SQLite and PostgreSQL stores.

One table, ``credits``: one row per (run, generated sample, rank), i.e. per credit handed from a
generated sample to one of its matched training items, with the evidence behind it. Rows are
only ever inserted; a row that exists already (same run id, generated id and rank) is skipped,
so recording a run twice never counts it twice.

The rows form a hash chain in the order they were written (``seq``): each carries the hash of
the row before it (``prev_hash``) and the hash of that and its own content (``row_hash``).
``Ledger.verify`` walks the chain and checks the triggers that keep the table append-only, so a
row rewritten, deleted, inserted or moved, or a trigger dropped, is found and named.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
#: The columns of the hash chain, beside ``COLUMNS``.
CHAIN = ("prev_hash", "row_hash")
#: ``prev_hash`` of the first row.
GENESIS = "0" * 64
#: What ``totals`` prints for credits whose contributor is not known.
NO_CONTRIBUTOR = "(contributor not known)"

Execute = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


@dataclass
class Verification:
    """What ``Ledger.verify`` found: rows checked, the hash of the last one, the problems."""

    rows: int = 0
    head: str = GENESIS
    unchained: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def row_hash(prev: str, row: Sequence[Any]) -> str:
    """The hash of one row (its ``COLUMNS`` values in order) chained to ``prev``.

    Values are written by their column's type, as the database gives them back: REAL as the
    exact hexadecimal of the float, INTEGER as a whole number, TEXT as text.
    """
    canon: list[Any] = []
    for types, v in zip(COLUMNS.values(), row, strict=True):
        if v is None:
            canon.append(None)
        elif types[0].startswith("REAL"):
            canon.append(float(v).hex())
        elif types[0].startswith("INTEGER"):
            canon.append(int(v))
        else:
            canon.append(str(v))
    blob = json.dumps([prev, canon], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


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
        return self._insert(self._insert_sql(), rows)

    def _insert(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        raise NotImplementedError

    def _chained(self, execute: Execute, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows not yet in the ledger, each with ``prev_hash`` and ``row_hash`` appended,
        chained after the last row; called inside the write transaction, which keeps other
        writers out until the rows are in."""
        p = self.placeholder
        key_at = [list(COLUMNS).index(k) for k in KEY]
        batch_keys = {tuple(r[i] for i in key_at) for r in rows}
        gids = {(k[0], k[1]) for k in batch_keys}
        present: set[tuple[Any, ...]] = set()
        if len(gids) <= 64:
            sql = f"SELECT rank FROM credits WHERE run_id = {p} AND generated_id = {p}"
            for run_id, gid in gids:
                present |= {(run_id, gid, r[0]) for r in execute(sql, [run_id, gid])}
        else:
            sql = f"SELECT generated_id, rank FROM credits WHERE run_id = {p}"
            for run_id in {k[0] for k in batch_keys}:
                present |= {(run_id, g, r) for g, r in execute(sql, [run_id])}
        last = execute("SELECT row_hash FROM credits ORDER BY seq DESC LIMIT 1", [])
        prev = last[0][0] if last and last[0][0] else GENESIS
        out = []
        for row in rows:
            key = tuple(row[i] for i in key_at)
            if key in present:
                continue
            present.add(key)
            digest = row_hash(prev, row)
            out.append((*row, prev, digest))
            prev = digest
        return out

    def _insert_sql(self) -> str:
        cols = ", ".join((*COLUMNS, *CHAIN))
        marks = ", ".join([self.placeholder] * (len(COLUMNS) + len(CHAIN)))
        return f"INSERT INTO credits ({cols}) VALUES ({marks})"

    # -- checking -------------------------------------------------------------------------
    #: The triggers that keep ``credits`` append-only, by name.
    guards: tuple[str, ...] = ()

    def present_guards(self) -> set[str]:
        """The names of the append-only triggers found on ``credits``."""
        raise NotImplementedError

    def verify(self) -> Verification:
        """Walk the hash chain in write order and check the append-only triggers.

        Names each row whose content no longer matches its hash (rewritten) and each row whose
        ``prev_hash`` is not the hash of the row before it (a row deleted, inserted or moved
        before it), and each trigger missing. Rows written before the ledger had a chain
        (no hashes) come first and are counted as unchained.
        """
        out = Verification()
        missing = [g for g in self.guards if g not in self.present_guards()]
        if missing:
            out.problems.append(
                f"the append-only trigger(s) {', '.join(missing)} are gone: the table can be "
                "changed without a trace"
            )
        cols = ", ".join(("seq", *COLUMNS, *CHAIN))
        cur = self.conn.cursor()
        try:
            cur.execute(f"SELECT {cols} FROM credits ORDER BY seq")
            prev = GENESIS
            chained = False
            while batch := cur.fetchmany(10_000):
                for seq, *rest in batch:
                    row, (prev_hash, own) = rest[: len(COLUMNS)], rest[len(COLUMNS) :]
                    out.rows += 1
                    if own is None and prev_hash is None and not chained:
                        out.unchained += 1
                        continue
                    chained = True
                    where = _describe(seq, row)
                    if prev_hash != prev:
                        out.problems.append(
                            f"{where}: its previous-row hash does not match the row before it "
                            "(a row was deleted, inserted or moved before it)"
                        )
                    if own != row_hash(str(prev_hash), row):
                        out.problems.append(f"{where}: its content does not match its hash "
                                            "(the row was rewritten)")  # fmt: skip
                    prev = str(own)
            out.head = prev
        finally:
            cur.close()
        self._end_read()
        return out

    def has_hash(self, digest: str) -> bool:
        """Whether some row's hash is ``digest`` (an earlier chain head, say)."""
        sql = f"SELECT COUNT(*) AS n FROM credits WHERE row_hash = {self.placeholder}"
        return bool(self._query(sql, [digest])["n"].iloc[0])

    def run_ids(self) -> pd.DataFrame:
        """Every run in the ledger with its number of credits, in order of first write."""
        return self._query(
            "SELECT run_id, COUNT(*) AS n_credits, SUM(credit) AS value FROM credits "
            "GROUP BY run_id ORDER BY MIN(seq)",
            [],
        ).astype({"n_credits": np.int64})

    # -- reading --------------------------------------------------------------------------
    def totals(self, run_id: str | None = None, by: str = "contributor") -> pd.DataFrame:
        """Who is owed what: summed credit per contributor (or training item, or run)."""
        if by not in GROUP_BY:
            raise InputError(f"cannot total by {by!r}; choose one of {list(GROUP_BY)}.")
        where, params = self._where(run_id=run_id)
        unknown = NO_CONTRIBUTOR.replace("'", "")
        sql = (
            f"SELECT COALESCE(NULLIF({by}, ''), '{unknown}') AS {by}, SUM(credit) AS value, "
            "COUNT(DISTINCT train_id) AS n_items, COUNT(DISTINCT generated_id) AS n_generated, "
            f"COUNT(*) AS n_credits, SUM(near_copy) AS n_near_copy FROM credits{where} "
            f"GROUP BY COALESCE(NULLIF({by}, ''), '{unknown}') ORDER BY value DESC, {by}"
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
        out = pd.DataFrame(rows, columns=names)
        return out.drop(columns=["seq", *CHAIN], errors="ignore")

    def _end_read(self) -> None:
        """Close the read transaction a driver may have opened."""

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(seq: Any, row: Sequence[Any]) -> str:
    values = dict(zip(COLUMNS, row, strict=True))
    return (
        f"row {seq} (run {values['run_id']}, generated {values['generated_id']!r}, rank "
        f"{values['rank']})"
    )


def schema_sql(dialect: int) -> str:
    """``CREATE TABLE`` of the credits table; ``dialect`` 0 is SQLite, 1 PostgreSQL."""
    seq = "seq INTEGER PRIMARY KEY AUTOINCREMENT" if dialect == 0 else "seq BIGSERIAL PRIMARY KEY"
    cols = ",\n  ".join(
        [f"{name} {types[dialect]}" for name, types in COLUMNS.items()]
        + [f"{name} TEXT" for name in CHAIN]
    )
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
