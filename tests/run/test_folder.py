"""The run folder: its layout, whether a folder is a (finished) run, and resuming settings."""

from __future__ import annotations

import json

import pytest

from gmvaluator.errors import InputError, ResumeError
from gmvaluator.run import folder as rf
from gmvaluator.run.folder import RunFolder


@pytest.fixture(scope="module")
def finished(tmp_path_factory, value_run):
    out = tmp_path_factory.mktemp("folder") / "run"
    value_run(out, "builtin:digits[:300]", "builtin:digits[300:320]")
    return RunFolder(out)


def test_a_finished_run_holds_what_every_use_reads(finished):
    assert finished.is_run()
    for purpose in rf.NEEDS:
        assert finished.is_finished(purpose) and finished.missing(purpose) == []
        assert finished.require_finished(purpose) is finished
    # the names are the files the run wrote
    for path in (finished.config, finished.record, finished.values, finished.attributions):
        assert path.is_file()
    assert (finished.index / "index.json").is_file()
    assert (finished.embeddings("train") / "meta.json").is_file()
    assert finished.read_settings()["train"] == "builtin:digits[:300]"
    assert finished.read_record()["counts"]["n_generated"] == 20


def test_a_folder_without_a_run_is_no_run(tmp_path):
    empty = RunFolder(tmp_path)
    assert not empty.is_run() and not empty.is_finished("top")
    assert not RunFolder(tmp_path / "absent").is_finished("report")
    with pytest.raises(InputError, match=r"absent is not a folder\. Give the --out folder"):
        RunFolder(tmp_path / "absent").require_finished("serve")


@pytest.mark.parametrize(
    ("purpose", "missing"),
    [
        ("append", "run.json, attributions.parquet, result.json, index/index.json"),
        ("serve", "run.json, index/index.json"),
        ("report", "attributions.parquet, run.json"),
    ],
)
def test_an_unfinished_run_names_the_missing_files_and_the_fix(tmp_path, purpose, missing):
    for name in ("config.json", "values.parquet"):
        (tmp_path / name).write_text("{}")
    folder = RunFolder(tmp_path)
    assert folder.is_run() and folder.is_finished("top") and not folder.is_finished(purpose)
    message = (
        rf"{tmp_path} is not a finished valuation run: {missing} missing \({purpose} reads "
        rf"them\)\. Run `gmvaluator value --train \.\.\. --generated \.\.\. --out {tmp_path}` "
        "to completion first."
    )
    with pytest.raises(InputError, match=message):
        folder.require_finished(purpose)


def test_resuming_with_other_settings_names_the_keys_that_differ(tmp_path):
    folder = RunFolder(tmp_path / "run")
    settings = {"train": "a", "k": 10, "index": "auto"}
    folder.check_settings(settings)
    assert json.loads(folder.config.read_text()) == settings
    folder.check_settings(dict(settings))  # the same settings resume
    with pytest.raises(ResumeError, match=r"different settings: index, k\. Use a new --out"):
        folder.check_settings({**settings, "k": 5, "index": "exact"})
    assert folder.read_settings() == settings  # a refused resume leaves the record alone
    folder.check_settings({**settings, "k": 5}, overwrite=True)
    assert folder.read_settings()["k"] == 5


def test_checking_settings_removes_what_a_killed_run_left_behind(tmp_path):
    folder = RunFolder(tmp_path)
    stale = [tmp_path / ".values.parquet.x1.tmp", tmp_path / "embeddings" / "train" / ".a.tmp"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"torn")
    keep = tmp_path / "notes.tmp"  # not one of ours: ours start with a dot
    keep.write_text("mine")
    folder.check_settings({"k": 3})
    assert not any(p.exists() for p in stale) and keep.exists()
    assert folder.remove_stale_temps() == 0
