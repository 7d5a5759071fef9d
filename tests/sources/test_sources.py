"""Tests of gmvaluator.sources: every format, the columns that ride along, ids, errors, hashes."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from gmvaluator.errors import InputError
from gmvaluator.sources import (
    FASHION_MNIST_CLASSES,
    Dataset,
    ImageItems,
    content_hash,
    load_source,
)
from gmvaluator.sources.builtin import FASHION_MNIST_ENV


def png_bytes(value: int, size: int = 4, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (size, size), (value,) * len(mode)).save(buf, format="PNG")
    return buf.getvalue()


def write_image(path: Path, value: int, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (value, 0, 0)).save(path, format=fmt)


# --- folder ---------------------------------------------------------------------------------


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    write_image(root / "b.png", 10, "PNG")
    write_image(root / "A.JPG", 20, "JPEG")
    write_image(root / "sub" / "c.webp", 30, "WEBP")
    write_image(root / "sub" / "deeper" / "d.BMP", 40, "BMP")
    write_image(root / "e.gif", 50, "GIF")
    write_image(root / "f.jpeg", 60, "JPEG")
    (root / "notes.txt").write_text("not an image")
    (root / "._b.png").write_bytes(b"macOS resource fork")
    return root


def test_folder_finds_images_recursively_sorted_with_relative_ids(image_folder: Path) -> None:
    ds = load_source(str(image_folder))
    assert ds.kind == "image"
    assert ds.ids.tolist() == [
        "A.JPG",
        "b.png",
        "e.gif",
        "f.jpeg",
        "sub/c.webp",
        "sub/deeper/d.BMP",
    ]
    assert ds.labels is None and ds.contributors is None
    assert isinstance(ds.items, ImageItems) and ds.items.paths is not None
    assert ds.items[1].getpixel((0, 0)) == (10, 0, 0)
    assert ds.items[4].size == (4, 4)


def test_folder_broken_image_is_named_only_when_decoded(image_folder: Path) -> None:
    (image_folder / "zz.png").write_bytes(b"not a png")
    ds = load_source(str(image_folder))  # listing never decodes
    with pytest.raises(InputError, match=r"cannot read image 'zz.png'"):
        ds.items[len(ds) - 1]


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(InputError, match=r"holds no images .*\.png"):
        load_source(str(tmp_path))


# --- arrays ---------------------------------------------------------------------------------


def test_npy_embeddings_are_float32_and_memory_mapped(tmp_path: Path) -> None:
    emb = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "e.npy", emb)
    ds = load_source(str(tmp_path / "e.npy"))
    assert ds.kind == "embedding"
    assert isinstance(ds.items, np.memmap)
    np.testing.assert_array_equal(ds.items, emb)
    assert ds.ids.tolist() == ["row-0", "row-1", "row-2", "row-3"]


def test_npy_float64_embeddings_become_float32(tmp_path: Path) -> None:
    np.save(tmp_path / "e.npy", np.ones((2, 5)))
    ds = load_source(str(tmp_path / "e.npy"))
    assert ds.items.dtype == np.float32 and ds.items.shape == (2, 5)  # type: ignore[attr-defined]


def test_npy_nonfinite_embedding_names_the_row(tmp_path: Path) -> None:
    emb = np.zeros((5, 3), dtype=np.float32)
    emb[3, 1] = np.nan
    np.save(tmp_path / "e.npy", emb)
    with pytest.raises(InputError, match=r"e\.npy has a non-finite value .* in row 3\. Drop"):
        load_source(str(tmp_path / "e.npy"))


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((3, 5, 6), np.uint8),
        ((3, 5, 6, 1), np.float32),
        ((3, 5, 6, 3), np.uint8),
        ((3, 5, 6, 4), np.uint8),
    ],
)
def test_npy_images(tmp_path: Path, shape: tuple[int, ...], dtype: type) -> None:
    data = (np.random.default_rng(0).random(shape) * (255 if dtype == np.uint8 else 1)).astype(
        dtype
    )
    np.save(tmp_path / "i.npy", data)
    ds = load_source(str(tmp_path / "i.npy"))
    assert ds.kind == "image" and len(ds) == 3
    assert ds.items[0].size == (6, 5)


def test_npy_bad_image_shapes_and_values(tmp_path: Path) -> None:
    np.save(tmp_path / "chw.npy", np.zeros((2, 3, 8, 8, 2), dtype=np.uint8))
    with pytest.raises(InputError, match=r"chw\.npy has shape \(2, 3, 8, 8, 2\); images must be"):
        load_source(str(tmp_path / "chw.npy"))
    np.save(tmp_path / "c2.npy", np.zeros((2, 8, 8, 2), dtype=np.uint8))
    with pytest.raises(InputError, match=r"C = 1, 3 or 4"):
        load_source(str(tmp_path / "c2.npy"))
    over = np.zeros((3, 4, 4), dtype=np.float32)
    over[2, 0, 0] = 2.0
    np.save(tmp_path / "over.npy", over)
    with pytest.raises(InputError, match=r"at row 2 with values outside \[0, 1\]"):
        load_source(str(tmp_path / "over.npy"))
    np.save(tmp_path / "u16.npy", np.zeros((2, 4, 4), dtype=np.uint16))
    with pytest.raises(InputError, match=r"dtype uint16; images must be uint8"):
        load_source(str(tmp_path / "u16.npy"))
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(InputError, match=r"flat\.npy has shape \(5,\)"):
        load_source(str(tmp_path / "flat.npy"))


def test_npy_errors_for_objects_empty_and_garbage(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"obj\.npy.*no object dtype"):
        load_source(str(tmp_path / "obj.npy"))
    np.save(tmp_path / "empty.npy", np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(InputError, match=r"empty\.npy holds no items"):
        load_source(str(tmp_path / "empty.npy"))
    (tmp_path / "junk.npy").write_bytes(b"hello")
    with pytest.raises(InputError, match=r"cannot read .*junk\.npy"):
        load_source(str(tmp_path / "junk.npy"))


def test_npz_with_ids_labels_contributors_and_extra(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(
        path,
        embeddings=np.eye(3, dtype=np.float32),
        ids=np.array(["a", "b", "c"]),
        labels=np.array([0, 1, 1]),
        contributors=np.array([7, 7, 8]),
        opt_out=np.array([False, True, False]),
    )
    ds = load_source(str(path))
    assert ds.kind == "embedding"
    assert ds.ids.tolist() == ["a", "b", "c"]
    assert ds.labels.tolist() == [0, 1, 1]  # type: ignore[union-attr]
    assert ds.contributors.tolist() == ["7", "7", "8"]  # type: ignore[union-attr]
    assert ds.extra["opt_out"].tolist() == [False, True, False]


@pytest.mark.parametrize("key", ["images", "x", "arr_0"])
def test_npz_image_keys(tmp_path: Path, key: str) -> None:
    np.savez(tmp_path / "d.npz", **{key: np.zeros((2, 4, 4, 3), dtype=np.uint8)})
    ds = load_source(str(tmp_path / "d.npz"))
    assert ds.kind == "image" and ds.ids.tolist() == ["row-0", "row-1"]


def test_npz_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "none.npz", foo=np.zeros((2, 3)))
    with pytest.raises(InputError, match=r"exactly one data array .*found keys \['foo'\]"):
        load_source(str(tmp_path / "none.npz"))
    np.savez(tmp_path / "two.npz", images=np.zeros((2, 3, 3)), x=np.zeros((2, 3)))
    with pytest.raises(InputError, match=r"found keys \['images', 'x'\]"):
        load_source(str(tmp_path / "two.npz"))
    np.savez(tmp_path / "emb.npz", embeddings=np.zeros((2, 3, 3)))
    with pytest.raises(InputError, match=r"key 'embeddings' has shape \(2, 3, 3\).*2-D"):
        load_source(str(tmp_path / "emb.npz"))
    np.savez(tmp_path / "lab.npz", x=np.zeros((2, 3)), labels=np.array([1, 2, 3]))
    with pytest.raises(InputError, match=r"key 'labels' has shape \(3,\) but the source has 2"):
        load_source(str(tmp_path / "lab.npz"))
    np.savez(tmp_path / "dup.npz", x=np.zeros((2, 3)), ids=np.array(["a", "a"]))
    with pytest.raises(InputError, match=r"duplicate ids"):
        load_source(str(tmp_path / "dup.npz"))
    np.savez(tmp_path / "objids.npz", x=np.zeros((1, 3)), ids=np.array([None], dtype=object))
    with pytest.raises(InputError, match=r"cannot read key 'ids'.*dtype=str"):
        load_source(str(tmp_path / "objids.npz"))


# --- parquet --------------------------------------------------------------------------------


def test_parquet_huggingface_image_struct(tmp_path: Path) -> None:
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    images = pa.array(
        [{"bytes": png_bytes(v), "path": f"{v}.png"} for v in (1, 2, 3)], type=image_type
    )
    table = pa.table(
        {
            "image": images,
            "label": [3, 1, 4],
            "contributor": ["ann", "bob", "ann"],
            "licence": ["cc-by", "cc0", "cc-by"],
        }
    )
    pq.write_table(table, tmp_path / "hf.parquet")
    ds = load_source(str(tmp_path / "hf.parquet"))
    assert ds.kind == "image" and ds.ids.tolist() == ["row-0", "row-1", "row-2"]
    assert ds.items[1].getpixel((0, 0)) == (2, 2, 2)
    assert ds.labels.tolist() == [3, 1, 4]  # type: ignore[union-attr]
    assert ds.contributors.tolist() == ["ann", "bob", "ann"]  # type: ignore[union-attr]
    assert ds.extra["licence"].tolist() == ["cc-by", "cc0", "cc-by"]


def test_parquet_binary_images_by_type_with_ids(tmp_path: Path) -> None:
    table = pa.table({"id": ["x", "y"], "picture": pa.array([png_bytes(5), png_bytes(6)])})
    pq.write_table(table, tmp_path / "p.parquet")
    ds = load_source(str(tmp_path / "p.parquet"))
    assert ds.kind == "image" and ds.ids.tolist() == ["x", "y"]
    assert ds.items.raw_bytes(0) == png_bytes(5)  # type: ignore[attr-defined]


@pytest.mark.parametrize("list_type", [pa.list_(pa.float32()), pa.list_(pa.float64(), 3)])
def test_parquet_embeddings(tmp_path: Path, list_type: pa.DataType) -> None:
    rows = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    table = pa.table({"embedding": pa.array(rows, type=list_type), "id": [10, 11]})
    pq.write_table(table, tmp_path / "e.parquet")
    ds = load_source(str(tmp_path / "e.parquet"))
    assert ds.kind == "embedding" and ds.ids.tolist() == ["10", "11"]
    np.testing.assert_array_equal(ds.items, np.array(rows, dtype=np.float32))
    assert ds.items.dtype == np.float32  # type: ignore[attr-defined]


def test_parquet_text_detected_and_explicit(tmp_path: Path) -> None:
    table = pa.table({"text": ["a cat", "a dog"], "prompt_v2": ["p1", "p2"], "label": ["x", "y"]})
    pq.write_table(table, tmp_path / "t.parquet")
    ds = load_source(str(tmp_path / "t.parquet"))
    assert ds.kind == "text" and ds.items == ["a cat", "a dog"]
    assert ds.labels.tolist() == ["x", "y"]  # type: ignore[union-attr]
    ds2 = load_source(str(tmp_path / "t.parquet"), text_column="prompt_v2")
    assert ds2.items == ["p1", "p2"]
    assert "text" in ds2.extra  # the unused text column rides along


def test_parquet_prefers_image_over_text(tmp_path: Path) -> None:
    table = pa.table({"text": ["caption"], "image": pa.array([png_bytes(1)])})
    pq.write_table(table, tmp_path / "m.parquet")
    assert load_source(str(tmp_path / "m.parquet")).kind == "image"


def test_parquet_column_errors(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1, 2], "b": [0.5, 0.1]}), tmp_path / "none.parquet")
    with pytest.raises(InputError, match=r"no column of images.*found: a \(int64\), b \(double\)"):
        load_source(str(tmp_path / "none.parquet"))
    pq.write_table(pa.table({"image": ["x.png"]}), tmp_path / "str.parquet")
    with pytest.raises(InputError, match=r"column 'image' has type string, but image columns"):
        load_source(str(tmp_path / "str.parquet"))
    pq.write_table(pa.table({"a": ["x"], "b": ["y"]}), tmp_path / "two.parquet")
    with pytest.raises(InputError, match=r"several text columns: \['a', 'b'\].*text_column"):
        load_source(str(tmp_path / "two.parquet"))
    with pytest.raises(InputError, match=r"has no column 'c'; found: a \(string\), b \(string\)"):
        load_source(str(tmp_path / "two.parquet"), text_column="c")
    pq.write_table(pa.table({"emb": [[1.0, 2.0]], "text": ["t"]}), tmp_path / "tc.parquet")
    with pytest.raises(InputError, match=r"column 'emb' has type list<.*text columns must hold"):
        load_source(str(tmp_path / "tc.parquet"), text_column="emb")


def test_parquet_value_errors_name_rows(tmp_path: Path) -> None:
    pq.write_table(pa.table({"embedding": [[1.0, 2.0], [1.0]]}), tmp_path / "ragged.parquet")
    with pytest.raises(InputError, match=r"different lengths: row 0 has 2, row 1 has 1"):
        load_source(str(tmp_path / "ragged.parquet"))
    pq.write_table(pa.table({"embedding": [[1.0], [float("inf")]]}), tmp_path / "inf.parquet")
    with pytest.raises(InputError, match=r"column 'embedding' has a non-finite value .* row 1"):
        load_source(str(tmp_path / "inf.parquet"))
    pq.write_table(pa.table({"text": ["a", None, "c"]}), tmp_path / "null.parquet")
    with pytest.raises(InputError, match=r"column 'text' is empty \(null\) at row 1"):
        load_source(str(tmp_path / "null.parquet"))
    pq.write_table(pa.table({"text": ["a", "b"], "id": ["x", None]}), tmp_path / "nid.parquet")
    with pytest.raises(InputError, match=r"column 'id' is empty \(null\) at row 1"):
        load_source(str(tmp_path / "nid.parquet"))
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    images = pa.array([{"bytes": None, "path": "a.png"}], type=image_type)
    pq.write_table(pa.table({"image": images}), tmp_path / "paths.parquet")
    with pytest.raises(InputError, match=r"column 'image' is empty \(null\) at row 0"):
        load_source(str(tmp_path / "paths.parquet"))
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match=r"cannot read .*junk\.parquet as Parquet"):
        load_source(str(tmp_path / "junk.parquet"))
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp_path / "empty.parquet")
    with pytest.raises(InputError, match=r"empty\.parquet holds no rows"):
        load_source(str(tmp_path / "empty.parquet"))


# --- text -----------------------------------------------------------------------------------


def test_txt_one_sample_per_nonblank_line(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("first\n\n  \nsecond line\r\nthird", encoding="utf-8")
    ds = load_source(str(tmp_path / "t.txt"))
    assert ds.kind == "text"
    assert ds.items == ["first", "second line", "third"]
    assert ds.ids.tolist() == ["line-1", "line-4", "line-5"]


def test_txt_errors(tmp_path: Path) -> None:
    (tmp_path / "blank.txt").write_text("\n \n")
    with pytest.raises(InputError, match=r"blank\.txt holds no text"):
        load_source(str(tmp_path / "blank.txt"))
    (tmp_path / "latin.txt").write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(InputError, match=r"latin\.txt line 2 is not valid UTF-8"):
        load_source(str(tmp_path / "latin.txt"))


def write_jsonl(path: Path, rows: list[object]) -> None:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_jsonl_with_columns(tmp_path: Path) -> None:
    rows = [
        {"text": "a", "id": "doc-1", "label": 2, "contributor": "ann"},
        {"text": "b", "id": "doc-2", "label": 0, "contributor": "bob"},
    ]
    write_jsonl(tmp_path / "d.jsonl", rows)
    ds = load_source(str(tmp_path / "d.jsonl"))
    assert ds.kind == "text" and ds.items == ["a", "b"]
    assert ds.ids.tolist() == ["doc-1", "doc-2"]
    assert ds.labels.tolist() == [2, 0]  # type: ignore[union-attr]
    assert ds.contributors.tolist() == ["ann", "bob"]  # type: ignore[union-attr]


def test_jsonl_default_ids_and_text_column(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"body": "x"}\n\n{"body": "y"}\n')
    ds = load_source(str(tmp_path / "d.jsonl"), text_column="body")
    assert ds.items == ["x", "y"] and ds.ids.tolist() == ["line-1", "line-3"]
    assert ds.labels is None


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('{"text": "a"}\n{"text": ', r"d\.jsonl line 2 is not valid JSON"),
        ('["a"]\n', r"d\.jsonl line 1 is a JSON list, not an object"),
        ('{"text": "a"}\n{"txt": "b"}\n', r"d\.jsonl line 2 has no 'text' key \(keys: \['txt'\]\)"),
        ('{"text": 5}\n', r"line 1 has a non-string 'text' key"),
        ('{"text": "a", "id": 1}\n{"text": "b"}\n', r"line 2 has no 'id' but line 1 has one"),
        ('{"text": "a", "label": [1]}\n', r"line 1 has a list as 'label'"),
        ('{"text": "a", "id": 1}\n{"text": "b", "id": 1}\n', r"duplicate ids"),
        ("\n\n", r"d\.jsonl holds no records"),
    ],
)
def test_jsonl_errors(tmp_path: Path, lines: str, message: str) -> None:
    (tmp_path / "d.jsonl").write_text(lines)
    with pytest.raises(InputError, match=message):
        load_source(str(tmp_path / "d.jsonl"))


# --- built-ins ------------------------------------------------------------------------------


def test_builtin_digits() -> None:
    ds = load_source("builtin:digits")
    assert ds.kind == "image" and len(ds) == 1797
    assert ds.ids[0] == "digits/0000" and ds.ids[-1] == "digits/1796"
    assert ds.labels.dtype == np.int64 and set(ds.labels.tolist()) == set(range(10))  # type: ignore[union-attr]
    arr = ds.items.array  # type: ignore[attr-defined]
    assert arr.shape == (1797, 8, 8) and arr.dtype == np.uint8 and arr.max() == 255
    assert ds.items[0].size == (8, 8)
    sliced = load_source("builtin:digits[10:12]")
    assert sliced.ids.tolist() == ["digits/0010", "digits/0011"]
    np.testing.assert_array_equal(sliced.items.array, arr[10:12])  # type: ignore[attr-defined]


def test_builtin_fashion_mnist_slices_of_both_splits() -> None:
    test = load_source("builtin:fashion-mnist:test[:5]")
    assert test.ids.tolist() == [f"fashion-mnist/test/{i:06d}" for i in range(5)]
    # The first items of the published files: ankle boot, pullover, trouser, trouser, shirt.
    assert test.labels.tolist() == [9, 2, 1, 1, 6]  # type: ignore[union-attr]
    assert test.extra["class_name"][0] == FASHION_MNIST_CLASSES[9] == "Ankle boot"
    assert test.items.array.shape == (5, 28, 28)  # type: ignore[attr-defined]
    train = load_source("builtin:fashion-mnist[2:4]")
    assert train.name == "builtin:fashion-mnist[2:4]"
    assert train.ids.tolist() == ["fashion-mnist/train/000002", "fashion-mnist/train/000003"]
    assert train.labels.tolist() == [0, 3]  # type: ignore[union-attr]
    explicit = load_source("builtin:fashion-mnist:train[2:4]")
    assert content_hash(explicit) == content_hash(train)


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    opener = gzip.open if gz else open
    suffix = ".gz" if gz else ""
    with opener(folder / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as fh:
        fh.write((0x803).to_bytes(4, "big"))
        fh.write(np.array(images.shape, dtype=">u4").tobytes() + images.tobytes())
    with opener(folder / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as fh:
        fh.write((0x801).to_bytes(4, "big") + len(labels).to_bytes(4, "big") + labels.tobytes())


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_env_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gz: bool
) -> None:
    images = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)
    write_idx(tmp_path, "t10k", images, np.array([4, 5, 6], dtype=np.uint8), gz)
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    ds = load_source("builtin:fashion-mnist:test[-2:]")
    assert ds.ids.tolist() == ["fashion-mnist/test/000001", "fashion-mnist/test/000002"]
    assert ds.labels.tolist() == [5, 6]  # type: ignore[union-attr]
    np.testing.assert_array_equal(ds.items.array, images[1:])  # type: ignore[attr-defined]


def test_fashion_mnist_missing_and_broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    with pytest.raises(InputError, match=r"Fashion-MNIST is not installed.*apt-get install"):
        load_source("builtin:fashion-mnist")
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01rest")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(InputError, match=r"t10k-images-idx3-ubyte is not an IDX file"):
        load_source("builtin:fashion-mnist:test")


@pytest.mark.parametrize(
    "spec", ["builtin:mnist", "builtin:fashion-mnist:val", "builtin:digits[::2]", "builtin:"]
)
def test_unknown_builtin_lists_the_known_ones(spec: str) -> None:
    with pytest.raises(InputError, match=r"unknown built-in source .*builtin:digits"):
        load_source(spec)


# --- dispatch -------------------------------------------------------------------------------


def test_missing_path_and_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.npy does not exist"):
        load_source(str(tmp_path / "nope.npy"))
    (tmp_path / "data.xlsx").write_text("a,b\n")
    with pytest.raises(InputError, match=r"unsupported format '\.xlsx'\. Supported: .*\.parquet"):
        load_source(str(tmp_path / "data.xlsx"))


def test_text_column_only_for_column_formats(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("a\n")
    with pytest.raises(InputError, match=r"text_column='x' was given for .*t\.txt"):
        load_source(str(tmp_path / "t.txt"), text_column="x")


def test_extension_is_case_insensitive(tmp_path: Path) -> None:
    np.save(tmp_path / "e.npy", np.ones((2, 2), dtype=np.float32))
    (tmp_path / "e.npy").rename(tmp_path / "E.NPY")
    assert load_source(str(tmp_path / "E.NPY")).kind == "embedding"


# --- content hash ---------------------------------------------------------------------------


def test_content_hash_is_deterministic_and_tracks_items(image_folder: Path, tmp_path: Path) -> None:
    h = content_hash(load_source(str(image_folder)))
    assert h == content_hash(load_source(str(image_folder))) and len(h) == 64
    write_image(image_folder / "b.png", 11, "PNG")
    assert content_hash(load_source(str(image_folder))) != h

    (tmp_path / "t.txt").write_text("ab\nc\n")
    t1 = content_hash(load_source(str(tmp_path / "t.txt")))
    (tmp_path / "t.txt").write_text("a\nbc\n")  # same bytes, moved across items
    assert content_hash(load_source(str(tmp_path / "t.txt"))) != t1


def test_content_hash_of_arrays_ids_and_labels() -> None:
    emb = np.zeros((3, 2), dtype=np.float32)
    ids = np.array(["a", "b", "c"])
    base = content_hash(Dataset("e", "embedding", ids, emb))
    emb2 = emb.copy()
    emb2[2, 1] = 1e-7
    assert content_hash(Dataset("e", "embedding", ids, emb2)) != base
    assert content_hash(Dataset("e", "embedding", np.array(["a", "b", "d"]), emb)) != base
    # Relabelling keeps the hash: labels do not change what an embedder sees.
    relabelled = Dataset("e", "embedding", ids, emb, labels=np.array([1, 2, 3]))
    assert content_hash(relabelled) == base
    images = Dataset("i", "image", ids, ImageItems(array=np.zeros((3, 2, 2), dtype=np.uint8)))
    blobs = Dataset("i", "image", ids, ImageItems(blobs=[b"x", b"y", b"z"]))
    assert content_hash(images) != content_hash(blobs) != base


def test_digits_falls_back_to_sklearn_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from gmvaluator.sources import builtin

    fake = types.ModuleType("sklearn.datasets")
    bunch = types.SimpleNamespace(images=np.full((2, 8, 8), 16.0), target=np.array([3, 4]))
    fake.load_digits = lambda: bunch  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sklearn.datasets", fake)
    monkeypatch.setattr(builtin, "_sklearn_digits_csv", lambda: None)
    ds = load_source("builtin:digits")
    assert ds.labels.tolist() == [3, 4]  # type: ignore[union-attr]
    assert ds.items.array.min() == 255  # type: ignore[attr-defined]
