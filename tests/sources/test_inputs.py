"""The inputs people already have: WebDataset shards, tables and lists of image paths, Hugging
Face datasets (save_to_disk and imagefolder), each written by the test from real digits."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gmvaluator.errors import InputError
from gmvaluator.skips import collect_skips
from gmvaluator.sources import expand_braces, load_source

N = 24


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> dict:
    """The first N real digits written as PNG files, with labels and two contributors."""
    ds = load_source(f"builtin:digits[:{N}]")
    root = tmp_path_factory.mktemp("digits")
    folder = root / "imgs"
    folder.mkdir()
    names = [f"d{i:03d}.png" for i in range(N)]
    pngs = []
    for name, arr in zip(names, ds.items.array, strict=True):
        buf = io.BytesIO()
        Image.fromarray(np.asarray(arr)).save(buf, format="PNG")
        pngs.append(buf.getvalue())
        (folder / name).write_bytes(buf.getvalue())
    return {
        "root": root,
        "folder": folder,
        "names": names,
        "pngs": pngs,
        "pixels": np.asarray(ds.items.array),
        "labels": np.asarray(ds.labels),
        "contributors": np.array([f"c{i % 2}" for i in range(N)]),
    }


def pixels(ds) -> np.ndarray:
    """The decoded items as grey levels (file images come back in RGB)."""
    return np.stack([np.asarray(ds.items[i].convert("L")) for i in range(len(ds))])


def write_shard(path: Path, members: list[tuple[str, bytes]], mode: str = "w") -> None:
    with tarfile.open(path, mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def shard_members(digits: dict, rows: range) -> list[tuple[str, bytes]]:
    out = []
    for i in rows:
        key = f"sample/{i:06d}"
        out.append((f"{key}.png", digits["pngs"][i]))
        out.append((f"{key}.cls", str(digits["labels"][i]).encode()))
        side = {"contributor": str(digits["contributors"][i]), "licence": "cc0"}
        out.append((f"{key}.json", json.dumps(side).encode()))
    return out


# --- WebDataset ---------------------------------------------------------------------------------


def test_brace_patterns_expand_with_zero_padding_and_lists() -> None:
    assert expand_braces("s/{000..002}.tar") == ["s/000.tar", "s/001.tar", "s/002.tar"]
    assert expand_braces("{a,b}-{1..2}.tar") == ["a-1.tar", "a-2.tar", "b-1.tar", "b-2.tar"]


def test_webdataset_shards_by_brace_pattern_list_and_path_list(digits, tmp_path) -> None:
    write_shard(tmp_path / "shard-000000.tar", shard_members(digits, range(0, 10)))
    write_shard(tmp_path / "shard-000001.tar", shard_members(digits, range(10, N)))
    ds = load_source(str(tmp_path / "shard-{000000..000001}.tar"))
    assert ds.kind == "image" and len(ds) == N
    assert ds.ids.tolist() == [f"sample/{i:06d}" for i in range(N)]
    np.testing.assert_array_equal(pixels(ds), digits["pixels"])
    np.testing.assert_array_equal(ds.labels, digits["labels"])
    np.testing.assert_array_equal(ds.contributors, digits["contributors"])
    assert ds.extra["licence"].tolist() == ["cc0"] * N
    both = "::".join(str(tmp_path / f"shard-00000{i}.tar") for i in (0, 1))
    assert load_source(both).ids.tolist() == ds.ids.tolist()
    (tmp_path / "shards.txt").write_text("shard-000000.tar\nshard-000001.tar\n")
    listed = load_source(str(tmp_path / "shards.txt"))
    assert listed.kind == "image" and listed.ids.tolist() == ds.ids.tolist()
    # no file was unpacked next to the shards
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "shard-000000.tar", "shard-000001.tar", "shards.txt"
    ]  # fmt: skip


def test_webdataset_reads_a_compressed_shard_and_text_shards(digits, tmp_path) -> None:
    write_shard(tmp_path / "one.tar.gz", shard_members(digits, range(5)), mode="w:gz")
    ds = load_source(str(tmp_path / "one.tar.gz"))
    np.testing.assert_array_equal(pixels(ds), digits["pixels"][:5])
    write_shard(tmp_path / "texts.tar", [("a.txt", b"a cat"), ("b.txt", b"a dog\n")])
    texts = load_source(str(tmp_path / "texts.tar"))
    assert texts.kind == "text" and texts.items == ["a cat", "a dog"]


def test_webdataset_errors_name_the_shard_and_sample(digits, tmp_path) -> None:
    write_shard(tmp_path / "shard-000000.tar", shard_members(digits, range(2)))
    with pytest.raises(InputError, match=r"shard .*shard-000001.tar does not exist"):
        load_source(str(tmp_path / "shard-{000000..000001}.tar"))
    members = [*shard_members(digits, range(3)), ("sample/000009.json", b"{}")]
    write_shard(tmp_path / "gap.tar", members)
    with pytest.raises(InputError, match=r"sample 'sample/000009' has no image member"):
        load_source(str(tmp_path / "gap.tar"))
    with collect_skips("skip") as skipped:
        assert len(load_source(str(tmp_path / "gap.tar"))) == 3
    assert [row[1] for row in skipped.rows] == ["sample/000009"]
    (tmp_path / "bad.tar").write_bytes(b"not a tar file at all" * 40)
    with pytest.raises(InputError, match=r"cannot read .*bad.tar as a tar file"):
        load_source(str(tmp_path / "bad.tar"))


# --- tables and lists of paths ------------------------------------------------------------------


def path_table(digits: dict) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "path": [f"imgs/{n}" for n in digits["names"]],
            "id": [f"{i:03d}" for i in range(N)],
            "label": digits["labels"],
            "contributor": digits["contributors"],
            "licence": ["cc-by"] * N,
            "opt_out": [i % 5 == 0 for i in range(N)],
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_a_table_of_paths_gives_images_and_its_columns(digits, suffix) -> None:
    table = digits["root"] / f"table{suffix}"
    df = path_table(digits)
    if suffix == ".csv":
        df.to_csv(table, index=False)
    elif suffix == ".tsv":
        df.to_csv(table, index=False, sep="\t")
    elif suffix == ".parquet":
        df.to_parquet(table)
    else:
        df.to_json(table, orient="records", lines=True)
    ds = load_source(str(table))
    assert ds.kind == "image"
    assert ds.ids.tolist() == df["id"].tolist()  # "007" stays a string id
    np.testing.assert_array_equal(pixels(ds), digits["pixels"])
    np.testing.assert_array_equal(ds.labels, digits["labels"])
    np.testing.assert_array_equal(ds.contributors, digits["contributors"])
    assert ds.extra["licence"].tolist() == ["cc-by"] * N
    assert np.asarray(ds.extra["opt_out"]).astype(str).tolist()[:2] in (
        ["True", "False"], ["true", "false"]
    )  # fmt: skip


def test_a_table_of_paths_reports_a_missing_file_by_row(digits, tmp_path) -> None:
    table = tmp_path / "t.csv"
    folder = digits["folder"]
    table.write_text(f"path\n{folder / 'd000.png'}\n{folder / 'gone.png'}\n")
    with pytest.raises(InputError, match=r"column 'path' row 2 names '.*gone.png', which is not"):
        load_source(str(table))
    with collect_skips("skip") as skipped:
        assert len(load_source(str(table))) == 1
    assert len(skipped) == 1
    (tmp_path / "cols.csv").write_text("name,score\na,1\n")
    with pytest.raises(InputError, match=r"no column of image paths; found columns"):
        load_source(str(tmp_path / "cols.csv"))


def test_a_txt_of_paths_is_a_path_list_and_kind_settles_it(digits, tmp_path) -> None:
    lst = digits["root"] / "list.txt"
    lst.write_text("\n".join(f"imgs/{n}" for n in digits["names"]) + "\n\n")
    ds = load_source(str(lst))
    assert ds.kind == "image" and ds.ids.tolist() == [f"imgs/{n}" for n in digits["names"]]
    np.testing.assert_array_equal(pixels(ds), digits["pixels"])
    assert load_source(str(lst), kind="text").kind == "text"  # the kind settles it
    # a text corpus stays text; asking for images names the first line that is not a file
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a cat on a mat\nimgs/d000.png\n")
    assert load_source(str(corpus)).kind == "text"
    with pytest.raises(InputError, match=r"line 1 names 'a cat on a mat', which is not a file"):
        load_source(str(corpus), kind="image")
    with pytest.raises(InputError, match=r"holds image items, not text items"):
        load_source(str(digits["folder"]), kind="text")


# --- Hugging Face -------------------------------------------------------------------------------


def test_a_save_to_disk_folder_is_read_with_its_columns(digits, tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=[str(d) for d in range(10)]),
            "contributor": datasets.Value("string"),
        }
    )
    hf = datasets.Dataset.from_dict(
        {
            "image": [Image.open(io.BytesIO(b)) for b in digits["pngs"]],
            "label": digits["labels"].tolist(),
            "contributor": digits["contributors"].tolist(),
        },
        features=features,
    )
    hf.save_to_disk(str(tmp_path / "saved"))
    ds = load_source(str(tmp_path / "saved"))
    assert ds.kind == "image" and ds.ids.tolist() == [f"row-{i}" for i in range(N)]
    np.testing.assert_array_equal(pixels(ds), digits["pixels"])
    np.testing.assert_array_equal(ds.labels, digits["labels"])
    np.testing.assert_array_equal(ds.contributors, digits["contributors"])
    assert pixels(ds.take(np.array([3, 1])))[0].tolist() == digits["pixels"][3].tolist()
    datasets.DatasetDict({"train": hf}).save_to_disk(str(tmp_path / "one-split"))
    assert len(load_source(str(tmp_path / "one-split"))) == N
    datasets.DatasetDict({"train": hf, "test": hf}).save_to_disk(str(tmp_path / "two"))
    with pytest.raises(InputError, match=r"holds the splits \['train', 'test'\]. Point at one"):
        load_source(str(tmp_path / "two"))


@pytest.mark.parametrize("metadata", ["metadata.csv", "metadata.jsonl"])
def test_an_imagefolder_takes_labels_and_contributors_from_its_metadata(
    digits, tmp_path, metadata
) -> None:
    folder = tmp_path / "imagefolder"
    (folder / "train").mkdir(parents=True)
    for name, png in zip(digits["names"], digits["pngs"], strict=True):
        (folder / "train" / name).write_bytes(png)
    df = pd.DataFrame(
        {
            "file_name": [f"train/{n}" for n in digits["names"]],
            "label": digits["labels"],
            "contributor": digits["contributors"],
        }
    )
    if metadata.endswith(".csv"):
        df.to_csv(folder / metadata, index=False)
    else:
        df.to_json(folder / metadata, orient="records", lines=True)
    ds = load_source(str(folder))
    plain = load_source(str(digits["folder"]))
    assert ds.ids.tolist() == [f"train/{n}" for n in plain.ids]  # the ids a folder gives
    np.testing.assert_array_equal(ds.labels, digits["labels"])
    np.testing.assert_array_equal(ds.contributors, digits["contributors"])
    (folder / "train" / "extra.png").write_bytes(digits["pngs"][0])
    with pytest.raises(InputError, match=rf"has {metadata}, which does not list 1 of its images"):
        load_source(str(folder))
