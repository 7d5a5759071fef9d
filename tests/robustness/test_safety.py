"""Safe with users' files and with money, through the command line as a user meets it: what
--out may be, one writer at a time, --overwrite, fixing a failed command, totals of the run
itself, mixed image modes, over-long texts, formula cells, file permissions."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from gmvaluator.cli import app

runner = CliRunner()
PIXELS = ("--embedder", "pixels", "--index", "exact", "--quiet")


def value(train, generated, out, *extra):
    args = ["value", "--train", train, "--generated", generated, "--out", out, *extra]
    return runner.invoke(app, [str(a) for a in args])


def digits(n: int, start: int = 0) -> list[np.ndarray]:
    from gmvaluator.sources import load_source

    return list(np.asarray(load_source(f"builtin:digits[{start}:{start + n}]").items.array))


def png(a: np.ndarray, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(a)
    (im.convert(mode) if mode == "L" else colour(a)).save(buf, format="PNG")
    return buf.getvalue()


def colour(a: np.ndarray) -> Image.Image:
    """A digit in colour: its strokes red, its background green-tinted."""
    return Image.merge(
        "RGB", (Image.fromarray(a), Image.fromarray(255 - a), Image.fromarray(a // 2))
    )


def one_line_error(res, says: str) -> None:
    assert res.exit_code == 2, res.output
    assert says in res.stderr and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


# -- --out ------------------------------------------------------------------------------------
def test_out_that_is_not_a_run_folder_is_refused_and_left_alone(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "values.parquet").write_bytes(b"my own table")
    (mine / ".draft.tmp").write_text("my notes")
    res = value("builtin:digits[:30]", "builtin:digits[30:40]", mine, "--k", "3", *PIXELS)
    one_line_error(res, "holds other files and no run")
    assert sorted(p.name for p in mine.iterdir()) == [".draft.tmp", "values.parquet"]
    assert (mine / "values.parquet").read_bytes() == b"my own table"

    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    res = value("builtin:digits[:30]", "builtin:digits[30:40]", afile, "--k", "3", *PIXELS)
    one_line_error(res, "is a file, not a run folder")
    assert afile.read_text() == "keep me"


def test_out_on_or_inside_an_input_source_is_refused(tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    for i, a in enumerate(digits(12)):
        (train / f"{i:02d}.png").write_bytes(png(a))
    (train / ".x.tmp").write_text("a user's file")
    for out in (train, train / "run"):
        res = value(train, "builtin:digits[30:33]", out, "--k", "3", *PIXELS)
        one_line_error(res, "is on or inside the input source")
    assert (train / ".x.tmp").read_text() == "a user's file"
    assert sorted(p.name for p in train.iterdir())[-1] == "11.png" and not (train / "run").exists()


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "run"
    holder = textwrap.dedent(
        f"""
        import sys, time
        from gmvaluator.run.folder import RunFolder
        with RunFolder({str(out)!r}).writing():
            print("holding", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        res = value("builtin:digits[:30]", "builtin:digits[30:40]", out, "--k", "3", *PIXELS)
        one_line_error(res, f"is being written by another process (pid {proc.pid}:")
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    res = value("builtin:digits[:30]", "builtin:digits[30:40]", out, "--k", "3", *PIXELS)
    assert res.exit_code == 0, res.output  # the lock went with its holder


def test_a_failed_command_can_be_fixed_and_rerun(tmp_path):
    out = tmp_path / "run"
    res = value("builtin:digits[:30]", "builtin:digits[30:40]", out, "--k", "50", *PIXELS)
    assert res.exit_code == 2 and "k=50 is larger than the training set" in res.stderr
    res = value("builtin:digits[:30]", "builtin:digits[30:40]", out, "--k", "5", *PIXELS)
    assert res.exit_code == 0, res.output
    res = value("builtin:digits[:30]", "builtin:digits[30:40]", out, "--k", "4", *PIXELS)
    one_line_error(res, "was made with different settings: k")  # a finished run stays fixed


def test_overwrite_leaves_nothing_of_the_previous_run(tmp_path, cli):
    out = tmp_path / "run"
    res = value("builtin:digits[:30]", "builtin:digits[30:40]", out, "--k", "3", "--on-error",
                "skip", "--report", *PIXELS)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (out / "skipped.csv").is_file() and (out / "report" / "index.html").is_file()
    (out / "eval").mkdir()
    (out / "eval" / "old.json").write_text("{}")
    (out / "mine.txt").write_text("a user's note")
    res = value("builtin:digits[:30]", "builtin:digits[30:50]", out, "--k", "4", "--overwrite",
                *PIXELS)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "removed the previous run's" in res.stderr
    for name in ("skipped.csv", "report", "eval", "ledger.sqlite"):
        assert name in res.stderr
    assert not (out / "skipped.csv").exists() and not (out / "report").exists()
    assert not (out / "eval").exists() and (out / "mine.txt").read_text() == "a user's note"
    totals = cli("ledger", "totals", out)
    assert totals.exit_code == 0 and "note:" not in totals.stderr
    with_values = pd.read_parquet(out / "attributions.parquet")["credit"].sum()
    assert _total(totals.stdout) == pytest.approx(with_values, rel=1e-5)
    assert len(pd.read_parquet(out / "attributions.parquet")) == 20 * 4


def _total(stdout: str) -> float:
    """The sum of the value column that `ledger totals` prints."""
    lines = stdout.strip().splitlines()
    at = lines[0].split().index("value")
    return sum(float(line.rsplit(maxsplit=5)[-5]) for line in lines[1:]) if at else 0.0


def test_totals_count_the_run_itself_after_its_training_data_changed(tmp_path, cli):
    train = tmp_path / "train"
    train.mkdir()
    for i, a in enumerate(digits(20)):
        (train / f"{i:02d}.png").write_bytes(png(a, "L"))
    out = tmp_path / "run"
    gen = "builtin:digits[40:60]"
    assert value(train, gen, out, "--k", "3", *PIXELS).exit_code == 0
    for i, a in enumerate(digits(5, start=100)):
        (train / f"new{i}.png").write_bytes(png(a, "L"))
    res = value(train, gen, out, "--k", "3", *PIXELS)
    assert res.exit_code == 0, res.output
    totals = cli("ledger", "totals", out)
    assert totals.exit_code == 0
    assert "(contributor not known)" in totals.stdout  # never a blank contributor
    credit = pd.read_parquet(out / "attributions.parquet")["credit"].sum()
    assert _total(totals.stdout) == pytest.approx(credit, rel=1e-5)  # 20, not 40
    assert "the ledger also holds credits of other runs: run-" in totals.stderr
    assert "--all-runs" in totals.stderr
    both = cli("ledger", "totals", out, "--all-runs")
    assert _total(both.stdout) == pytest.approx(2 * credit, rel=1e-5)
    assert cli("ledger", "totals", "--ledger", out).stdout == totals.stdout  # the old spelling


def test_files_are_written_with_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        res = value("builtin:digits[:30]", "builtin:digits[30:40]", tmp_path / "run", "--k",
                    "3", *PIXELS)  # fmt: skip
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    for name in ("values.parquet", "attributions.parquet", "run.json", "config.json"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


# -- images -----------------------------------------------------------------------------------
def test_one_greyscale_image_among_colour_ones_changes_nothing(tmp_path, cli):
    colours = tmp_path / "colour"
    colours.mkdir()
    for i, a in enumerate(digits(16)):
        (colours / f"{i + 10:02d}.png").write_bytes(png(a))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in colours.iterdir():
        (mixed / f.name).write_bytes(f.read_bytes())
    for name, a in (("00_grey.png", digits(1, 200)[0]), ("15_grey.png", digits(1, 201)[0])):
        (mixed / name).write_bytes(png(a, "L"))  # one sorted first, one among the others
    cache = tmp_path / "cache"  # shared by both runs, as the default cache is
    for src, out in ((colours, "a"), (mixed, "b")):
        res = value(src, colours, tmp_path / out, "--k", "3", "--cache", cache, *PIXELS)
        assert res.exit_code == 0, res.output
    a = np.load(tmp_path / "a" / "index" / "embeddings.npy")
    b = np.load(tmp_path / "b" / "index" / "embeddings.npy")
    ids_b = pd.read_parquet(tmp_path / "b" / "values.parquet")["train_id"].tolist()
    assert a.shape == (16, 28 * 28 * 3) and b.shape == (18, 28 * 28 * 3)
    rows = [ids_b.index(f"{i + 10:02d}.png") for i in range(16)]
    np.testing.assert_array_equal(b[rows], a)  # the colour images read the same either way


# -- inputs -----------------------------------------------------------------------------------
def test_an_over_long_text_line_is_named(tmp_path, monkeypatch):
    path = tmp_path / "gen.jsonl"
    path.write_text(
        '{"text": "a short and fine line"}\n'
        + '{"text": "'
        + "word " * 400
        + '"}\n'
        + '{"text": "another fine line"}\n'
    )
    monkeypatch.setenv("GMVALUATOR_MAX_TEXT_BYTES", "1000")
    res = value(path, path, tmp_path / "run", "--embedder", "minilm", "--k", "1", "--quiet")
    one_line_error(res, "line 2 is longer than 1,000 bytes, the limit of one text item")


def test_every_item_skipped_points_to_a_skipped_csv_that_exists(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"{i}.png").write_bytes(b"not an image")
    out = tmp_path / "run"
    res = value(bad, "builtin:digits[:3]", out, "--on-error", "skip", "--k", "1", *PIXELS)
    one_line_error(res, "was skipped; nothing is left to value. See skipped.csv")
    assert sorted(pd.read_csv(out / "skipped.csv")["id"]) == ["0.png", "1.png", "2.png"]


def test_a_bad_parquet_image_is_named_by_its_id(tmp_path):
    blobs = [png(a) for a in digits(4)]
    blobs[2] = b"broken bytes"
    table = pa.table({"image": blobs, "id": ["cat-a", "cat-b", "cat-c", "cat-d"]})
    pq.write_table(table, tmp_path / "t.parquet")
    res = value(tmp_path / "t.parquet", "builtin:digits[:3]", tmp_path / "run", "--k", "1",
                *PIXELS)  # fmt: skip
    one_line_error(res, "cannot read image 'cat-c'")


def test_ledger_export_neutralises_formulas(tmp_path, cli):
    contributors = tmp_path / "who.csv"
    ids = [f"digits/{i:04d}" for i in range(30)]
    owners = ['=HYPERLINK("http://x","pay")', "+1", "-2", "@SUM(A1)", "plain"] * 6
    pd.DataFrame({"id": ids, "contributor": owners}).to_csv(contributors, index=False)
    out = tmp_path / "run"
    res = value("builtin:digits[:30]", "builtin:digits[30:40]", out, "--k", "5",
                "--contributors", contributors, *PIXELS)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert cli("ledger", "export", out, "--out", tmp_path / "c.csv").exit_code == 0
    cells = pd.read_csv(tmp_path / "c.csv", dtype=str)["contributor"]
    assert set(cells) <= {'\'=HYPERLINK("http://x","pay")', "'+1", "'-2", "'@SUM(A1)", "plain"}
    assert not cells.str.match(r"^[=+\-@]").any()
    assert cli("ledger", "export", out, "--out", tmp_path / "c.parquet").exit_code == 0
    exact = pd.read_parquet(tmp_path / "c.parquet")["contributor"]
    assert set(exact) <= set(owners)  # Parquet keeps the values as they are


def test_stale_temporaries_of_the_tool_only_are_removed(tmp_path):
    out = tmp_path / "run"
    assert value("builtin:digits[:30]", "builtin:digits[30:40]", out, "--k", "3",
                 *PIXELS).exit_code == 0  # fmt: skip
    ours = out / ".gmvaluator-values.parquet.abc123.tmp"
    theirs = [out / ".values.parquet.abc.tmp", out / "index" / ".notes.tmp"]
    for p in (ours, *theirs):
        p.write_text("x")
    time.sleep(0.01)
    assert value("builtin:digits[:30]", "builtin:digits[30:40]", out, "--k", "3",
                 *PIXELS).exit_code == 0  # fmt: skip
    assert not ours.exists() and all(p.exists() for p in theirs)
