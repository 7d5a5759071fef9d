"""The run folder: its layout, whether a folder is a (finished) run, and resuming settings."""

from __future__ import annotations

import json
import os

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
    folder.write_record({"finished": True})  # settings are fixed once the run has finished
    with pytest.raises(ResumeError, match=r"different settings: index, k\. Use a new --out"):
        folder.check_settings({**settings, "k": 5, "index": "exact"})
    assert folder.read_settings() == settings  # a refused resume leaves the record alone
    folder.check_settings({**settings, "k": 5}, overwrite=True)
    assert folder.read_settings()["k"] == 5


def test_checking_settings_removes_what_a_killed_run_left_behind(tmp_path):
    folder = RunFolder(tmp_path)
    stale = [
        tmp_path / ".gmvaluator-values.parquet.x1.tmp",
        tmp_path / "embeddings" / "train" / ".gmvaluator-a.npy.x2.tmp",
    ]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"torn")
    (tmp_path / "config.json").write_text("{}")
    # not ours: only the tool's own prefix is removed
    keep = [tmp_path / "notes.tmp", tmp_path / ".notes.tmp", tmp_path / "embeddings" / ".x.tmp"]
    for path in keep:
        path.write_text("mine")
    folder.check_settings({"k": 3})
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    assert folder.remove_stale_temps() == 0


def test_an_unfinished_run_with_other_settings_is_replaced_and_says_so(tmp_path, caplog):
    folder = RunFolder(tmp_path / "run")
    folder.check_settings({"train": "a", "k": 50})
    folder.index.mkdir()
    (folder.index / "index.json").write_text("{}")
    (folder.path / "skipped.csv").write_text("source,id,reason\n")
    (folder.path / "embeddings").mkdir()
    (folder.path / "mine.txt").write_text("a user's note")
    removed = folder.check_settings({"train": "a", "k": 5})
    assert removed == ["config.json", "skipped.csv", "index"]
    assert "removed the previous run's skipped.csv, index" in caplog.text
    assert folder.read_settings()["k"] == 5 and (folder.path / "embeddings").is_dir()
    assert (folder.path / "mine.txt").read_text() == "a user's note"


HOLDER = """
import sys, time
from gmvaluator.run.folder import RunFolder
with RunFolder(sys.argv[1]).writing(), RunFolder(sys.argv[1]).writing():  # it may re-enter
    print("holding", flush=True)
    time.sleep(60)
"""


def test_the_lock_names_its_holder_and_keeps_a_second_writer_out(tmp_path):
    import subprocess
    import sys

    from gmvaluator.run.append import append_run

    folder = RunFolder(tmp_path / "run")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder.path)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "holding"
        assert (folder.path / rf.LOCK).read_text().startswith(f"pid {proc.pid}: ")
        with pytest.raises(InputError, match=rf"another process \(pid {proc.pid}: "):
            append_run(folder.path, "builtin:digits[:3]")
        with pytest.raises(InputError, match="being written by another process"), folder.writing():
            pass
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    with folder.writing(), folder.writing():  # free again, and this process may re-enter
        assert (folder.path / rf.LOCK).read_text().startswith(f"pid {os.getpid()}: ")
