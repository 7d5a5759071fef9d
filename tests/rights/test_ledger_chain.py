"""The ledger's hash chain: `ledger verify` finds a row rewritten, deleted, inserted or moved,
and a trigger dropped, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import sqlite3

import pytest
from test_ledger import fake_credits

from gmvaluator.rights.ledger import COLUMNS, open_ledger
from gmvaluator.rights.ledger.base import CHAIN, GENESIS, row_hash


def plain_row(run_id: str) -> list:
    """The first credit row of run ``run_id`` as Python values, as sqlite3 binds them."""
    return [getattr(v, "item", lambda v=v: v)() for v in fake_credits(run_id, 1).iloc[0]]


def sqlite_ledger(tmp_path, name="l.sqlite"):
    path = tmp_path / name
    with open_ledger(path) as led:
        assert led.append(fake_credits("r1", 5)) == 20
        assert led.append(fake_credits("r2", 5)) == 20
        assert led.verify().ok and led.verify().rows == 40
    return path


def tamper(path, *sql: str, params=()):
    with sqlite3.connect(path) as conn:
        for statement in sql:
            conn.execute(statement, params if "?" in statement else ())


def verify(cli, target):
    res = cli("ledger", "verify", target)
    return res.exit_code, res.stdout


def test_an_untouched_ledger_verifies_and_its_head_stays(tmp_path, cli):
    path = sqlite_ledger(tmp_path)
    code, out = verify(cli, path)
    assert code == 0 and "40 rows, hash chain and triggers intact" in out
    head = out.split("chain head: ")[1].split()[0]
    with open_ledger(path) as led:
        led.append(fake_credits("r3", 2))
    assert cli("ledger", "verify", path, "--head", head).exit_code == 0
    res = cli("ledger", "verify", path, "--head", "f" * 64)
    assert res.exit_code == 1 and "is no longer in the ledger" in res.stdout


def test_replace_into_is_refused_and_update_delete_stay_refused(tmp_path):
    path = sqlite_ledger(tmp_path)
    cols = ", ".join(COLUMNS)
    marks = ", ".join("?" * len(COLUMNS))
    row = tuple(plain_row("r1"))
    for sql in (
        f"REPLACE INTO credits ({cols}) VALUES ({marks})",
        f"INSERT OR REPLACE INTO credits ({cols}) VALUES ({marks})",
    ):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            tamper(path, sql, params=row)
    for sql in ("UPDATE credits SET credit = 999", "DELETE FROM credits WHERE seq = 3"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            tamper(path, sql)


@pytest.mark.parametrize(
    ("how", "sql", "says"),
    [
        ("rewritten", ["UPDATE credits SET credit = 999 WHERE seq = 7"],
         ["row 7 (run r1, generated 'g1', rank 3): its content does not match"]),
        ("deleted", ["DELETE FROM credits WHERE seq = 7"],
         ["row 8 (run r1, generated 'g1', rank 4): its previous-row hash does not match"]),
        ("moved", ["UPDATE credits SET seq = -7 WHERE seq = 7",
                   "UPDATE credits SET seq = 7 WHERE seq = 8",
                   "UPDATE credits SET seq = 8 WHERE seq = -7"],
         ["row 7 (run r1, generated 'g1', rank 4): its previous-row hash does not match",
          "row 8 (run r1, generated 'g1', rank 3): its previous-row hash does not match"]),
    ],
)  # fmt: skip
def test_verify_names_each_changed_row_and_the_dropped_triggers(tmp_path, cli, how, sql, says):
    path = sqlite_ledger(tmp_path)
    tamper(path, "DROP TRIGGER credits_no_update", "DROP TRIGGER credits_no_delete", *sql)
    with open_ledger(path):
        pass  # opening the ledger again does not put the triggers back silently
    code, out = verify(cli, path)
    assert code == 1, out
    assert "credits_no_update, credits_no_delete are gone" in out
    for line in says:
        assert line in out


def test_a_row_inserted_with_a_forged_hash_is_found(tmp_path, cli):
    """An inserted row chained to the start: the row after it no longer follows it."""
    path = sqlite_ledger(tmp_path)
    row = plain_row("r9")
    forged = row_hash(GENESIS, row)
    cols = ", ".join(("seq", *COLUMNS, *CHAIN))
    tamper(path, f"INSERT INTO credits ({cols}) VALUES ({', '.join('?' * (len(COLUMNS) + 3))})",
           params=(0, *row, GENESIS, forged))  # fmt: skip
    code, out = verify(cli, path)
    assert code == 1 and "row 1 (run r1, generated 'g0', rank 1): its previous-row hash" in out


def test_postgresql_verify_finds_a_rewritten_row_and_a_dropped_trigger(postgres_url, cli):
    import psycopg

    with open_ledger(postgres_url) as led:
        led.append(fake_credits("r1", 5))
        led.append(fake_credits("r2", 5))
        assert led.verify().ok and led.verify().rows == 40
        assert led.present_guards() == {"credits_append_only", "credits_no_truncate"}
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        with pytest.raises(psycopg.Error, match="append-only"):
            conn.execute("TRUNCATE credits")
        conn.execute("DROP TRIGGER credits_append_only ON credits")
        conn.execute("UPDATE credits SET credit = 999 WHERE seq = 7")
    code, out = verify(cli, postgres_url)
    assert code == 1
    assert "credits_append_only are gone" in out
    assert "row 7 (run r1, generated 'g1', rank 3): its content does not match" in out
