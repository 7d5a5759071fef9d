"""`gmvaluator value RUN ...`: the run folder as an argument, as every other command takes it;
`--out RUN` keeps working, and two different folders are refused."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from gmvaluator.cli import app

runner = CliRunner()
SOURCES = ("--train", "builtin:digits[:200]", "--generated", "builtin:digits[1700:1730]",
           "--embedder", "pixels", "--k", "5", "--cache", "none", "--quiet")  # fmt: skip


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("where", ["argument", "out", "both"])
def test_value_writes_the_run_named_as_argument_or_out(tmp_path, where):
    run = tmp_path / "run"
    given = {"argument": [run], "out": ["--out", run], "both": [run, "--out", run]}[where]
    res = invoke("value", *given, *SOURCES)
    assert res.exit_code == 0, res.output
    values = pd.read_parquet(run / "values.parquet")
    assert len(values) == 200 and 0 < values["value"].sum() <= 30.0 + 1e-9
    assert (run / "run.json").is_file()
    assert f"wrote {run}/values.parquet" in res.stdout


def test_value_refuses_two_different_run_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    res = invoke("value", a, "--out", b, *SOURCES)
    assert res.exit_code == 2
    assert f"RUN {a} and --out {b} name two folders" in res.stderr
    assert "Traceback" not in res.output and not a.exists() and not b.exists()


def test_value_without_a_run_folder_says_what_is_missing(tmp_path):
    res = invoke("value", *SOURCES)
    assert res.exit_code == 2
    assert "value needs --train and --out RUN (or RUN as its argument)" in res.stderr


def test_append_takes_no_run_argument(tmp_path):
    run = tmp_path / "run"
    assert invoke("value", run, *SOURCES).exit_code == 0
    res = invoke("value", run, "--append", run, "--generated", "builtin:digits[1730:1740]")
    assert res.exit_code == 2 and "--append RUN takes no --train, --out or RUN" in res.stderr


def test_help_shows_the_run_argument():
    res = invoke("value", "--help")
    assert res.exit_code == 0 and "RUN" in res.stdout and "--out" in res.stdout
