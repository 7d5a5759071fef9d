"""The ledger of credits on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from gmvaluator.errors import InputError
from gmvaluator.rights.ledger import COLUMNS, open_ledger


@pytest.fixture(scope="module")
def ledger_run(tmp_path_factory, owned_digits, value_run):
    out = tmp_path_factory.mktemp("ledger") / "run"
    value_run(out, owned_digits, "builtin:digits[1500:1560]")
    return out


def fake_credits(run_id: str, n_generated: int, k: int = 4) -> pd.DataFrame:
    """Credit rows of ``n_generated`` samples with ``k`` matches each, owners a/b/c."""
    g = np.repeat(np.arange(n_generated), k)
    rank = np.tile(np.arange(1, k + 1), n_generated)
    train = (g * 7 + rank) % 50
    return pd.DataFrame(
        {
            "run_id": run_id, "generated_id": [f"g{i}" for i in g], "generated_sha256": "0" * 64,
            "rank": rank, "train_id": [f"t{i}" for i in train],
            "contributor": np.array(["a", "b", "c"])[train % 3], "licence": "cc0",
            "distance": rank * 0.1, "quality": 1.0, "credit": 1.0 / k, "near_copy": 0,
            "index_version": "Flat", "embedder": "pixels", "settings_sha256": "s",
            "recorded_at": "2026-01-01T00:00:00+00:00",
        }
    )[list(COLUMNS)]  # fmt: skip


def check_totals_and_explain(target: str) -> None:
    rows = fake_credits("r1", 30)
    with open_ledger(target) as led:
        assert led.append(rows) == 120
        assert led.append(rows) == 0  # the same run recorded again adds nothing
        assert led.append(fake_credits("r2", 10)) == 40
        totals = led.totals(run_id="r1")
        want = rows.groupby("contributor")["credit"].sum().sort_values(ascending=False)
        assert list(totals["contributor"]) == list(want.index)
        np.testing.assert_allclose(totals["value"], want.to_numpy())
        assert totals["n_generated"].max() <= 30 and totals["n_credits"].sum() == 120
        assert led.totals()["value"].sum() == pytest.approx(40.0)
        assert list(led.totals(by="run_id")["run_id"]) == ["r1", "r2"]
        ex = led.explain("g3", run_id="r1")
        assert list(ex["rank"]) == [1, 2, 3, 4]
        want_train = rows.loc[rows["generated_id"] == "g3", "train_id"].tolist()
        assert ex["train_id"].tolist() == want_train
        assert ex["credit"].sum() == pytest.approx(1.0)
        assert len(led.explain("g3")) == 8  # in both runs
        assert len(led.export()) == 160 and led.count() == 160
        with pytest.raises(InputError, match="cannot total by 'licence'"):
            led.totals(by="licence")


def test_sqlite_totals_explain_and_idempotence(tmp_path):
    check_totals_and_explain(str(tmp_path / "ledger.sqlite"))


def test_postgresql_totals_explain_and_idempotence(postgres_url):
    check_totals_and_explain(postgres_url)


def test_the_ledger_is_append_only(tmp_path, postgres_url):
    import psycopg

    path = tmp_path / "l.sqlite"
    with open_ledger(path) as led:
        led.append(fake_credits("r", 2))
        with pytest.raises(Exception, match="append-only"):
            led.conn.execute("UPDATE credits SET credit = 0")
        with pytest.raises(Exception, match="append-only"):
            led.conn.execute("DELETE FROM credits")
    with open_ledger(postgres_url) as led:
        led.append(fake_credits("r", 2))
        with pytest.raises(psycopg.Error, match="append-only"):
            led.conn.execute("DELETE FROM credits")
        led.conn.rollback()
        assert led.count() == 8


WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_ledger import fake_credits
    from gmvaluator.rights.ledger import open_ledger
    with open_ledger(sys.argv[1]) as led:
        time.sleep(max(0.0, float(sys.argv[4]) - time.time()))  # start both writers together
        for b in range(int(sys.argv[3])):
            rows = fake_credits(f"{{sys.argv[2]}}-{{b}}", 25)
            assert led.append(rows) == len(rows)
    """
)


def append_concurrently(target: str, batches: int = 40) -> None:
    import time
    from pathlib import Path

    code = WRITER.format(tests=str(Path(__file__).parent))
    with open_ledger(target):
        pass  # the schema exists before the writers start
    start = str(time.time() + 3.0)
    procs = [
        subprocess.Popen([sys.executable, "-c", code, target, name, str(batches), start])
        for name in ("p1", "p2")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with open_ledger(target) as led:
        assert led.count() == 2 * batches * 100
        assert len(led.totals(by="run_id")) == 2 * batches


def test_two_processes_appending_at_once_lose_no_row_sqlite(tmp_path):
    append_concurrently(str(tmp_path / "shared.sqlite"))


def test_two_processes_appending_at_once_lose_no_row_postgresql(postgres_url):
    append_concurrently(postgres_url)


def test_a_run_records_every_credit_with_its_evidence(ledger_run, cli):
    run = json.loads((ledger_run / "run.json").read_text())
    att = pd.read_parquet(ledger_run / "attributions.parquet")
    with open_ledger(ledger_run) as led:
        rows = led.export()
    assert len(rows) == len(att) == 300 and set(rows["run_id"]) == {run["run_id"]}
    assert rows["generated_sha256"].str.len().eq(64).all()
    assert rows["index_version"].str.startswith("Flat").all()
    assert json.loads(rows["embedder"].iloc[0])["name"] == "pixels"
    merged = rows.merge(att, on=["generated_id", "rank"], suffixes=("", "_att"))
    np.testing.assert_allclose(merged["credit"], merged["credit_att"])
    assert (merged["train_id"] == merged["train_id_att"]).all()
    values = pd.read_parquet(ledger_run / "values.parquet")
    owner = dict(zip(values["train_id"], values["contributor"], strict=True))
    assert (rows["contributor"] == rows["train_id"].map(owner)).all()
    # totals per contributor equal contributors.parquet
    contrib = pd.read_parquet(ledger_run / "contributors.parquet").set_index("contributor")
    with open_ledger(ledger_run) as led:
        totals = led.totals().set_index("contributor")
    np.testing.assert_allclose(totals["value"], contrib.loc[totals.index, "value"], atol=1e-9)
    assert run["ledger"]["rows_added"] == 300


def test_rerunning_the_same_run_does_not_double_count(ledger_run, owned_digits, value_run):
    value_run(ledger_run, owned_digits, "builtin:digits[1500:1560]")
    with open_ledger(ledger_run) as led:
        assert led.count() == 300
    assert json.loads((ledger_run / "run.json").read_text())["ledger"]["rows_added"] == 0


def test_a_run_can_record_into_postgresql(tmp_path, owned_digits, value_run, postgres_url, cli):
    value_run(tmp_path / "r", owned_digits, "builtin:digits[1500:1510]", "--ledger", postgres_url)
    assert not (tmp_path / "r" / "ledger.sqlite").exists()
    res = cli("ledger", "totals", "--ledger", postgres_url)
    assert res.exit_code == 0 and "contributor" in res.stdout and "c" in res.stdout
    with open_ledger(postgres_url) as led:
        assert led.count() == 50


def test_ledger_commands(ledger_run, cli, tmp_path):
    res = cli("ledger", "totals", "--ledger", ledger_run)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["contributor", "value", "n_items"] and len(lines) == 11
    res = cli("ledger", "explain", "digits/1503", "--ledger", ledger_run)
    assert res.exit_code == 0 and res.stdout.count("digits/") == 5, res.output
    res = cli("ledger", "explain", "nope", "--ledger", ledger_run)
    assert res.exit_code == 2 and "no credits from generated sample 'nope'" in res.output
    out = tmp_path / "credits.csv"
    res = cli("ledger", "export", "--ledger", ledger_run, "--out", out)
    assert res.exit_code == 0 and len(pd.read_csv(out)) == 300
    res = cli("ledger", "export", "--ledger", ledger_run, "--out", out)
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = cli("ledger", "totals", "--ledger", tmp_path / "none.sqlite")
    assert res.exit_code == 2 and "no ledger at" in res.output
