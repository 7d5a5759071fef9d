"""A corpus of broken inputs, written by the tests, run through the CLI.

Default: stop with one line that names the item and the fix, exit code 2, no traceback.
With --on-error skip: the run goes on and RUN/skipped.csv lists every skipped item and why.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from gmvaluator.cli import app
from gmvaluator.sources import load_source
from gmvaluator.sources.base import open_image

runner = CliRunner()


def value(train, generated, out, *extra):
    args = ["value", "--train", train, "--generated", generated, "--out", out, "--quiet"]
    return runner.invoke(app, [str(a) for a in [*args, "--k", "3", *extra]])


def digit_images(n: int = 24) -> list[np.ndarray]:
    ds = load_source(f"builtin:digits[:{n}]")
    return [np.asarray(ds.items.array[i]) for i in range(n)]  # type: ignore[attr-defined]


def png_bytes(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def good_folder(root, n: int = 24):
    root.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(digit_images(n)):
        Image.fromarray(a).resize((16, 16)).save(root / f"d{i:03d}.png")
    return root


def _huge_png() -> bytes:
    return png_bytes(Image.new("1", (10_000, 9_000)))  # 90M pixels, above PIL's limit


BROKEN = {
    "truncated.png": lambda good: good[: len(good) // 2],
    "zero.png": lambda good: b"",
    "notes.jpg": lambda good: b"these are notes, not a JPEG\n",
    "bomb.png": lambda good: _huge_png(),
}


def _write_broken(folder, name):
    good = (folder / "d000.png").read_bytes()
    (folder / name).write_bytes(BROKEN[name](good))


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_image_stops_the_run_naming_the_file(tmp_path, name):
    folder = good_folder(tmp_path / "train")
    _write_broken(folder, name)
    res = value(folder, "builtin:digits[:5]", tmp_path / "run", "--embedder", "pixels")
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and name in line
    assert "Remove or replace the file" in line or "Downscale the file" in line


def test_skip_goes_on_and_lists_every_broken_image(tmp_path):
    folder = good_folder(tmp_path / "train")
    for name in BROKEN:
        _write_broken(folder, name)
    res = value(
        folder, "builtin:digits[:5]", tmp_path / "run", "--embedder", "pixels", "--on-error",
        "skip",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"skipped {len(BROKEN)} bad items" in res.stdout
    skipped = pd.read_csv(tmp_path / "run" / "skipped.csv")
    assert sorted(skipped["id"]) == sorted(BROKEN)
    assert set(skipped["source"]) == {"train"}
    assert skipped["reason"].str.len().min() > 20
    values = pd.read_parquet(tmp_path / "run" / "values.parquet")
    assert len(values) == 24 and not set(BROKEN) & set(values["train_id"])
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["skipped"] == len(BROKEN)


def _modes_corpus(folder):
    """One real photo-like image saved in every mode and container the readers must take."""
    folder.mkdir()
    base = Image.fromarray(np.kron(digit_images(1)[0], np.ones((4, 4), np.uint8)))  # 32x32
    rgb = Image.merge("RGB", (base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT), base))
    base.save(folder / "mode_L.png")
    base.convert("LA").save(folder / "mode_LA.png")
    rgb.convert("P").save(folder / "mode_P.png")
    rgb.save(folder / "mode_RGB.png")
    rgb.convert("RGBA").save(folder / "mode_RGBA.png")
    rgb.convert("CMYK").save(folder / "mode_CMYK.jpg")
    Image.fromarray(np.asarray(base, np.uint16) * 257).save(folder / "mode_I16.png")
    frames = [base, base.rotate(90), base.rotate(180)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    rgb.crop((0, 0, 32, 16)).save(folder / "exif.jpg", exif=exif)
    rgb.save(folder / "photo.webp")
    rgb.save(folder / "photo.bmp")
    return folder


def test_every_image_mode_is_read_as_l_or_rgb(tmp_path):
    folder = _modes_corpus(tmp_path / "modes")
    ds = load_source(str(folder))
    assert len(ds) == 11
    for i, name in enumerate(ds.ids):
        im = ds.items[i]  # type: ignore[index]
        assert im.mode in ("L", "RGB"), name
        if name == "exif.jpg":
            assert im.size == (16, 32)  # EXIF orientation applied
        elif name != "animated.gif":
            assert im.size == (32, 32), name
    l16 = np.asarray(open_image(folder / "mode_I16.png", "mode_I16.png"))
    np.testing.assert_array_equal(l16, np.asarray(Image.open(folder / "mode_L.png")))
    la = np.asarray(open_image(folder / "mode_LA.png", "la"))
    np.testing.assert_array_equal(la, np.asarray(Image.open(folder / "mode_L.png")))


def test_every_image_mode_values_end_to_end(tmp_path):
    folder = _modes_corpus(tmp_path / "modes")
    res = value(folder, folder, tmp_path / "run", "--embedder", "pixels")
    assert res.exit_code == 0, res.output
    att = pd.read_parquet(tmp_path / "run" / "attributions.parquet")
    first = att[att["rank"] == 1]  # several files hold the same pixels: ties go to the first
    assert (first["distance"] < 1e-6).all() and len(first) == 11


def test_text_with_bad_lines(tmp_path):
    txt = tmp_path / "quotes.txt"
    txt.write_bytes(
        b"a stitch in time saves nine\n\nlatin-1 caf\xe9 line\nwell begun is half done\n"
    )
    res = value(txt, txt, tmp_path / "run", "--embedder", "minilm", "--k", "1")
    assert res.exit_code == 2 and "line 3 is not valid UTF-8" in res.stderr
    res = value(
        txt, txt, tmp_path / "run2", "--embedder", "minilm", "--k", "1", "--on-error", "skip"
    )
    assert res.exit_code == 0, res.output
    skipped = pd.read_csv(tmp_path / "run2" / "skipped.csv")
    assert set(skipped["id"]) == {"line-3"} and set(skipped["source"]) == {"train", "generated"}


def test_jsonl_with_malformed_and_empty_records(tmp_path):
    path = tmp_path / "gen.jsonl"
    lines = ['{"text": "the early bird catches the worm"}', "{not json", '{"text": "  "}',
             '{"text": "fortune favours the bold"}', '{"txt": "wrong key"}']  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    res = value(path, path, tmp_path / "run", "--embedder", "minilm", "--k", "1")
    assert res.exit_code == 2 and "line 2 is not valid JSON" in res.stderr
    res = value(
        path, path, tmp_path / "run2", "--embedder", "minilm", "--k", "1", "--on-error", "skip"
    )
    assert res.exit_code == 0, res.output
    skipped = pd.read_csv(tmp_path / "run2" / "skipped.csv")
    assert sorted(set(skipped["id"])) == ["line-2", "line-3", "line-5"]


def test_parquet_missing_or_mistyped_columns_always_stop(tmp_path):
    pq.write_table(pa.table({"id": ["a", "b"], "score": [1.0, 2.0]}), tmp_path / "none.parquet")
    pq.write_table(pa.table({"embedding": ["x", "y"]}), tmp_path / "typed.parquet")
    for name, message in [("none", "has no column of images"), ("typed", "has type string")]:
        res = value(
            tmp_path / f"{name}.parquet",
            "builtin:digits[:3]",
            tmp_path / name,
            "--on-error",
            "skip",
        )
        assert res.exit_code == 2 and message in res.stderr, res.output


def test_parquet_null_rows_are_skipped(tmp_path):
    blobs = [png_bytes(Image.fromarray(a)) for a in digit_images(6)]
    blobs[2] = None
    pq.write_table(
        pa.table({"image": blobs, "id": [f"p{i}" for i in range(6)]}), tmp_path / "t.parquet"
    )
    res = value(
        tmp_path / "t.parquet", "builtin:digits[:3]", tmp_path / "run", "--embedder", "pixels"
    )
    assert res.exit_code == 2 and "is empty (null) at row 2" in res.stderr
    res = value(
        tmp_path / "t.parquet", "builtin:digits[:3]", tmp_path / "run2", "--embedder", "pixels",
        "--on-error", "skip",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert list(pd.read_csv(tmp_path / "run2" / "skipped.csv")["id"]) == ["row-2"]


def test_bad_embeddings_and_duplicate_ids(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 8)).astype(np.float32)
    x[3, 1], x[7, 0], x[11] = np.nan, np.inf, 0.0
    ids = np.array([f"e{i}" for i in range(30)])
    ids[20] = "e5"
    np.savez(tmp_path / "train.npz", embeddings=x, ids=ids)
    np.save(tmp_path / "gen.npy", rng.normal(size=(4, 8)).astype(np.float32))
    res = value(tmp_path / "train.npz", tmp_path / "gen.npy", tmp_path / "run")
    assert (
        res.exit_code == 2
        and "non-finite value (NaN, inf, or beyond float32) in row 3" in res.stderr
    )
    np.savez(tmp_path / "dup.npz", embeddings=np.abs(x[12:24]) + 1, ids=np.array(["a", "b"] * 6))
    res = value(tmp_path / "dup.npz", tmp_path / "gen.npy", tmp_path / "run1")
    assert res.exit_code == 2 and "duplicate ids, e.g. ['a', 'b']" in res.stderr
    res = value(
        tmp_path / "train.npz", tmp_path / "gen.npy", tmp_path / "run2", "--on-error", "skip"
    )
    assert res.exit_code == 0, res.output
    skipped = pd.read_csv(tmp_path / "run2" / "skipped.csv").set_index("id")["reason"]
    assert set(skipped.index) == {"e5", "e3", "e7", "e11"}
    assert "duplicate id" in skipped["e5"] and "non-finite" in skipped["e3"]
    assert "zero vector" in skipped["e11"]
    values = pd.read_parquet(tmp_path / "run2" / "values.parquet")
    assert len(values) == 26 and values["value"].sum() == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unsupported", r"unsupported format .\.xlsx.\. Supported: a folder of images"),
        ("empty-folder", "holds no images"),
        ("dims", "have 8 dimensions but the training embeddings have 16"),
        ("k", r"k=40 is larger than the training set \(30 items\)"),
    ],
)
def test_whole_source_errors_stop_even_with_skip(tmp_path, case, message):
    import re

    rng = np.random.default_rng(1)
    train, gen = tmp_path / "train.npy", tmp_path / "gen.npy"
    np.save(train, rng.normal(size=(30, 16)).astype(np.float32))
    np.save(gen, rng.normal(size=(4, 16)).astype(np.float32))
    extra = ["--on-error", "skip"]
    if case == "unsupported":
        train = tmp_path / "data.xlsx"
        train.write_text("a,b\n1,2\n")
    elif case == "empty-folder":
        train = tmp_path / "empty"
        train.mkdir()
    elif case == "dims":
        np.save(gen, rng.normal(size=(4, 8)).astype(np.float32))
    elif case == "k":
        extra += ["--k", "40"]
    res = value(train, gen, tmp_path / "run", *extra)
    assert res.exit_code == 2, res.output
    assert re.search(message, res.stderr), res.stderr


def test_not_enough_disk_or_memory_is_refused_before_the_work(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    res = value("builtin:digits", "builtin:digits[:4]", tmp_path / "run", "--embedder", "pixels")
    assert res.exit_code == 2
    assert re.search(
        r"needs about 0\.0\d GB on disk under .* but only 0\.00 GB is free", res.stderr
    )
    monkeypatch.undo()
    monkeypatch.setenv("GMVALUATOR_MEMORY_BYTES", "1000")
    res = value("builtin:digits", "builtin:digits[:4]", tmp_path / "run2", "--embedder", "pixels")
    assert res.exit_code == 2 and "of memory, but only 0.00 GB is available" in res.stderr


def test_resuming_a_skip_run_without_skip_stops_at_the_bad_item(tmp_path):
    """Shards made under --on-error skip lack the bad items; a later default run must not
    reuse them and silently drop those items."""
    folder = good_folder(tmp_path / "train")
    _write_broken(folder, "zero.png")
    args = (folder, "builtin:digits[:5]", tmp_path / "run", "--embedder", "pixels")
    res = value(*args, "--on-error", "skip")
    assert res.exit_code == 0, res.output
    res = value(*args)
    assert res.exit_code == 2 and "zero.png" in res.stderr


def test_a_bad_item_alone_in_its_batch_is_skipped(tmp_path):
    folder = good_folder(tmp_path / "train", n=4)
    _write_broken(folder, "zero.png")  # sorts last: a batch of one with --batch-size 4
    res = value(folder, "builtin:digits[:3]", tmp_path / "run", "--embedder", "pixels",
                "--batch-size", "4", "--on-error", "skip")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert list(pd.read_csv(tmp_path / "run" / "skipped.csv")["id"]) == ["zero.png"]
