"""Reading inputs: one spec string (a path or ``builtin:...``) becomes a ``Dataset``.

Formats: a folder of images (with an ``imagefolder`` metadata table or without); a Hugging Face
``save_to_disk`` folder; WebDataset ``.tar`` shards; ``.npy``/``.npz`` arrays (images or
embeddings); ``.parquet`` (image bytes, embeddings or text); ``.csv``/``.tsv``/``.parquet``/
``.jsonl`` tables of image paths; ``.txt`` lists of image paths; ``.txt`` and ``.jsonl`` text;
built-in digits and Fashion-MNIST. See ``load_source``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gmvaluator.errors import InputError
from gmvaluator.sources.arrays import dataset_from_array, read_npy, read_npz
from gmvaluator.sources.base import (
    Dataset,
    ImageItems,
    Kind,
    array_to_image,
    open_image,
)
from gmvaluator.sources.builtin import (
    BUILTINS,
    FASHION_MNIST_CLASSES,
    load_builtin,
    load_digits,
    load_fashion_mnist,
)
from gmvaluator.sources.folder import IMAGE_EXTENSIONS, find_images, read_image_folder
from gmvaluator.sources.hashing import content_hash
from gmvaluator.sources.hf import is_saved_dataset, read_saved_dataset
from gmvaluator.sources.parquet import read_parquet
from gmvaluator.sources.tables import names_paths, path_list_of, read_path_list, read_path_table
from gmvaluator.sources.text import read_jsonl, read_txt
from gmvaluator.sources.webdataset import (
    TAR_SUFFIXES,
    expand_braces,
    is_shard_spec,
    read_webdataset,
)

__all__ = [
    "BUILTINS",
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "KINDS",
    "SUPPORTED_FORMATS",
    "Dataset",
    "ImageItems",
    "Kind",
    "array_to_image",
    "content_hash",
    "dataset_from_array",
    "expand_braces",
    "find_images",
    "load_builtin",
    "load_digits",
    "load_fashion_mnist",
    "load_source",
    "open_image",
    "read_image_folder",
    "read_jsonl",
    "read_npy",
    "read_npz",
    "read_parquet",
    "read_path_list",
    "read_path_table",
    "read_saved_dataset",
    "read_txt",
    "read_webdataset",
]

_FILE_READERS: dict[str, Callable[[Path], Dataset]] = {
    ".npy": read_npy,
    ".npz": read_npz,
    ".parquet": read_parquet,
    ".txt": read_txt,
    ".jsonl": read_jsonl,
    ".csv": read_path_table,
    ".tsv": read_path_table,
}
# Readers of files with named columns, the only ones where text_column means something.
_COLUMN_READERS = {".parquet": read_parquet, ".jsonl": read_jsonl}

#: What ``kind`` may ask of a source (``--train-kind``, ``--generated-kind``).
KINDS = ("auto", "image", "text", "embedding")

SUPPORTED_FORMATS = (
    "a folder of images (" + ", ".join(IMAGE_EXTENSIONS) + "), with or without a "
    "metadata.csv/.jsonl; a Hugging Face save_to_disk folder; WebDataset shards (.tar, a "
    "brace pattern such as shards/{000000..000009}.tar, or several joined by ::); "
    ".npy or .npz arrays of images or embeddings; .parquet with an image, embedding or text "
    "column; .csv, .tsv, .parquet or .jsonl with a column of image paths (file_name, path, "
    "image_path, ...); .txt (one text, or one image path, per line); .jsonl (one object with "
    "'text' per line); " + ", ".join(f"builtin:{b}" for b in BUILTINS)
)


def load_source(spec: str, *, text_column: str | None = None, kind: str | None = None) -> Dataset:
    """Read the source that ``spec`` names: a path (folder or file), WebDataset shards or
    ``builtin:<name>``.

    ``text_column`` picks the text column of a ``.parquet`` file or the text key of a
    ``.jsonl`` file; other formats have no columns to pick. ``kind`` (``image``, ``text``,
    ``embedding``; None or ``auto`` to tell from the source) settles what a ``.txt`` file holds
    (image paths or texts) and is checked against what any other source holds.
    """
    if kind not in (None, *KINDS):
        raise InputError(f"unknown source kind {kind!r}. Use one of {', '.join(KINDS)}.")
    ds = _read(spec, text_column, None if kind == "auto" else kind)
    if kind not in (None, "auto") and ds.kind != kind:
        raise InputError(
            f"{spec} holds {ds.kind} items, not {kind} items as asked. Leave the kind at auto "
            f"or point at a source of {kind} items."
        )
    return ds


def _read(spec: str, text_column: str | None, kind: str | None) -> Dataset:
    if spec.startswith("builtin:"):
        _no_text_column(spec, text_column)
        return load_builtin(spec)
    if is_shard_spec(spec) and ("{" in spec or "::" in spec or Path(spec).is_file()):
        _no_text_column(spec, text_column)
        return read_webdataset(spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(
            f"{spec} does not exist. Check the path, or use a built-in source such as "
            "builtin:digits."
        )
    if path.is_dir():
        if is_saved_dataset(path):
            return read_saved_dataset(path, text_column=text_column)
        _no_text_column(spec, text_column)
        return read_image_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".txt" and kind != "text":
        _no_text_column(spec, text_column)
        listed = path_list_of(path, TAR_SUFFIXES)
        if listed == "suffixes":
            return read_webdataset(_lines(path), name=spec)
        if kind == "image" or listed == "files":
            return read_path_list(path)
    if suffix in (".parquet", ".jsonl") and text_column is None and names_paths(path):
        return read_path_table(path)
    if suffix in _COLUMN_READERS:
        return _COLUMN_READERS[suffix](path, text_column=text_column)
    if suffix in _FILE_READERS:
        _no_text_column(spec, text_column)
        return _FILE_READERS[suffix](path)
    raise InputError(
        f"{spec}: unsupported format {suffix or '(no extension)'!r}. Supported: "
        f"{SUPPORTED_FORMATS}."
    )


def _lines(path: Path) -> list[Path]:
    """The paths a list names, relative to its folder."""
    lines = [s.strip() for s in path.read_text(encoding="utf-8-sig").splitlines() if s.strip()]
    return [p if p.is_absolute() else path.parent / p for p in map(Path, lines)]


def _no_text_column(spec: str, text_column: str | None) -> None:
    if text_column is not None:
        raise InputError(
            f"text_column={text_column!r} was given for {spec}, which has no columns. Use it "
            "only with .parquet or .jsonl sources, or leave it out."
        )
