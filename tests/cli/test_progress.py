"""Progress bars on stderr: every long stage of `value` names itself when bars are asked for,
and nothing is written when they are not (not a terminal, or --quiet)."""

from __future__ import annotations

import dataclasses
import io

import pytest
from typer.testing import CliRunner

from gmvaluator import env, progress, search
from gmvaluator.cli import app

runner = CliRunner()
TRAIN, GENERATED = "builtin:digits[:300]", "builtin:digits[1700:1750]"
#: The bars a `value --report` run on the digits shows, one per stage.
STAGES = (
    f"embed {TRAIN} (pixels)",
    f"embed {GENERATED} (pixels)",
    "index build (ivfpq)",
    "search top-k",
    "density of generated samples",
    "near copies: calibrate",
    "report",
)


def _value(run, *extra: str):
    args = ["value", str(run), "--train", TRAIN, "--generated", GENERATED, "--embedder",
            "pixels", "--index", "ivfpq", "--k", "5", "--cache", "none", "--report",
            *extra]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (run / "values.parquet").is_file() and (run / "report" / "index.html").is_file()
    return res


def test_value_names_every_stage_on_stderr_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv(env.PROGRESS.name, "1")
    res = _value(tmp_path / "run")
    missing = [stage for stage in STAGES if f"{stage}: 100%" not in res.stderr]
    assert not missing, res.stderr
    assert "100%" not in res.stdout  # the summary stays clean


@pytest.mark.parametrize("setting", [None, "1"])
def test_no_bar_off_a_terminal_nor_with_quiet(tmp_path, monkeypatch, setting):
    """Off a terminal (the runner's stderr is not one) bars stay off unless asked; --quiet
    turns them off even when asked."""
    if setting is None:
        monkeypatch.delenv(env.PROGRESS.name, raising=False)
        res = _value(tmp_path / "run")
    else:
        monkeypatch.setenv(env.PROGRESS.name, setting)
        res = _value(tmp_path / "run", "--quiet")
    assert "%|" not in res.stderr and not any(stage in res.stderr for stage in STAGES)


def test_index_tuning_shows_its_probes(digits_pixels, monkeypatch, capsys):
    monkeypatch.setenv(env.PROGRESS.name, "1")
    x = search.prepare(digits_pixels[0][:1000], "cosine", "digits")
    params = search.resolve_params("ivfpq", "cosine", len(x), x.shape[1], 5)
    params = dataclasses.replace(params, target_recall=0.95)
    _, tuned = search.build_tuned(x, params, 5, sample=200, progress=True)
    err = capsys.readouterr().err
    assert tuned.heldout_recall is not None and "index tune" in err
    assert f"nprobe={tuned.nprobe}" in err or tuned.kind == "exact"
    _, silent = search.build_tuned(x, params, 5, sample=200)
    assert silent == tuned and capsys.readouterr().err == ""


def test_a_terminal_shows_bars_unless_the_variable_says_0(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Terminal())
    monkeypatch.delenv(env.PROGRESS.name, raising=False)
    assert progress.enabled(True) and not progress.enabled(False)
    monkeypatch.setenv(env.PROGRESS.name, "0")
    assert not progress.enabled(True)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    monkeypatch.setenv(env.PROGRESS.name, "1")
    assert progress.enabled(True) and not progress.enabled(False)
