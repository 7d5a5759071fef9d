"""Hugging Face datasets saved with ``Dataset.save_to_disk``: a folder with ``state.json`` and
Arrow files (or a ``DatasetDict``'s ``dataset_dict.json`` and one folder per split).

Read with the ``datasets`` package (the ``hf-datasets`` extra). The data column is chosen as for
Parquet (an ``Image`` feature, embeddings or text; ``text_column`` picks a text column), and
``id``, ``label`` (a ``ClassLabel`` gives its integer), ``contributor``, ``licence`` and
``opt_out`` columns ride along. Image bytes stay in the memory-mapped Arrow files until used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gmvaluator.errors import InputError
from gmvaluator.sources.base import Dataset, ImageItems
from gmvaluator.sources.parquet import _embeddings, _nulls, _texts, choose_column, kept_table
from gmvaluator.sources.tables import table_dataset

INSTALL_HINT = "pip install 'gmvaluator[hf-datasets]'"


def is_saved_dataset(path: Path) -> bool:
    """Whether ``path`` is a folder written by ``save_to_disk`` (a dataset or a dataset dict)."""
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    )


def read_saved_dataset(path: str | Path, *, text_column: str | None = None) -> Dataset:
    """A ``save_to_disk`` folder; a dataset dict of one split is that split."""
    path = Path(path)
    where = str(path)
    try:
        import datasets
    except ImportError:
        raise InputError(
            f"{path} is a Hugging Face dataset saved with save_to_disk; reading it needs the "
            f"datasets package: {INSTALL_HINT}."
        ) from None
    try:
        loaded = datasets.load_from_disk(str(path))
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise InputError(f"cannot read {path} as a Hugging Face dataset: {exc}.") from exc
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if len(splits) != 1:
            raise InputError(
                f"{path} holds the splits {splits}. Point at one of them, e.g. {path / splits[0]}."
            )
        loaded, where = loaded[splits[0]], str(path / splits[0])
    table: pa.Table = loaded.flatten_indices().data.table
    if table.num_rows == 0:
        raise InputError(f"{where} holds no rows. Point it at a non-empty dataset.")
    column, kind = choose_column(table.schema, where, text_column)
    col = table.column(column)
    cw = f"{where} column {column!r}"
    if kind == "image":
        table, rows = kept_table(table, _nulls(col), cw)
        col = table.column(column)
        if pa.types.is_struct(col.type):
            col = pc.struct_field(col, "bytes")
        blobs: ArrowBlobs | None = ArrowBlobs(col)
        data: object = None
    else:
        rows = np.arange(table.num_rows)
        blobs, data = None, {"embedding": _embeddings, "text": _texts}[kind](col, cw)

    def items(ids: np.ndarray) -> object:  # a bad image is named by its id
        return data if blobs is None else ImageItems(blobs=blobs, names=[str(i) for i in ids])

    return table_dataset(
        where,
        kind,
        len(rows),
        table,
        column,
        items,
        lambda: np.array([f"row-{i}" for i in rows], dtype=str),
    )


class ArrowBlobs(Sequence[bytes]):
    """The bytes of an Arrow binary column (memory-mapped by ``datasets``), one row at a time."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        self.column = column

    def __len__(self) -> int:
        return len(self.column)

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.column[int(i)].as_py()

    def take(self, rows: np.ndarray) -> ArrowBlobs:
        return ArrowBlobs(self.column.take(pa.array(np.asarray(rows, dtype=np.int64))))
