"""Reading inputs: one spec string (a path or ``builtin:...``) becomes a ``Dataset``.

Formats: a folder of images; ``.npy``/``.npz`` arrays (images or embeddings); ``.parquet``
(image bytes, embeddings or text); ``.txt`` and ``.jsonl`` text; built-in digits and
Fashion-MNIST. See ``load_source``.
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
from gmvaluator.sources.parquet import read_parquet
from gmvaluator.sources.text import read_jsonl, read_txt

__all__ = [
    "BUILTINS",
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "SUPPORTED_FORMATS",
    "Dataset",
    "ImageItems",
    "Kind",
    "array_to_image",
    "content_hash",
    "dataset_from_array",
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
    "read_txt",
]

_FILE_READERS: dict[str, Callable[[Path], Dataset]] = {
    ".npy": read_npy,
    ".npz": read_npz,
    ".parquet": read_parquet,
    ".txt": read_txt,
    ".jsonl": read_jsonl,
}
# Readers of files with named columns, the only ones where text_column means something.
_COLUMN_READERS = {".parquet": read_parquet, ".jsonl": read_jsonl}

SUPPORTED_FORMATS = (
    "a folder of images (" + ", ".join(IMAGE_EXTENSIONS) + "); "
    ".npy or .npz arrays of images or embeddings; .parquet with an image, embedding or text "
    "column; .txt (one text per line); .jsonl (one object with 'text' per line); "
    + ", ".join(f"builtin:{b}" for b in BUILTINS)
)


def load_source(spec: str, *, text_column: str | None = None) -> Dataset:
    """Read the source that ``spec`` names: a path (folder or file) or ``builtin:<name>``.

    ``text_column`` picks the text column of a ``.parquet`` file or the text key of a
    ``.jsonl`` file; other formats have no columns to pick.
    """
    if spec.startswith("builtin:"):
        _no_text_column(spec, text_column)
        return load_builtin(spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(
            f"{spec} does not exist. Check the path, or use a built-in source such as "
            "builtin:digits."
        )
    if path.is_dir():
        _no_text_column(spec, text_column)
        return read_image_folder(path)
    suffix = path.suffix.lower()
    if suffix in _COLUMN_READERS:
        return _COLUMN_READERS[suffix](path, text_column=text_column)
    if suffix in _FILE_READERS:
        _no_text_column(spec, text_column)
        return _FILE_READERS[suffix](path)
    raise InputError(
        f"{spec}: unsupported format {suffix or '(no extension)'!r}. Supported: "
        f"{SUPPORTED_FORMATS}."
    )


def _no_text_column(spec: str, text_column: str | None) -> None:
    if text_column is not None:
        raise InputError(
            f"text_column={text_column!r} was given for {spec}, which has no columns. Use it "
            "only with .parquet or .jsonl sources, or leave it out."
        )
