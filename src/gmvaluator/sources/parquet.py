"""Parquet sources: one column of image bytes, embeddings or text, plus optional columns.

The data column is chosen by name first (image, then embedding, then text names), then by type;
``text_column`` picks a text column explicitly. Image columns are binary, or structs with a
``bytes`` field as HuggingFace ``datasets`` writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gmvaluator.errors import InputError
from gmvaluator.skips import on_bad_item
from gmvaluator.sources._columns import ITEM_COLUMNS, as_embeddings
from gmvaluator.sources.base import Dataset, ImageItems, Kind

COLUMN_NAMES: dict[Kind, tuple[str, ...]] = {
    "image": ("image", "img", "images"),
    "embedding": ("embedding", "embeddings", "emb", "vector"),
    "text": ("text", "caption", "prompt", "sentence"),
}
OPTIONAL_COLUMNS = ITEM_COLUMNS
EXPECTED = {
    "image": "binary image bytes, or a struct with a 'bytes' field",
    "embedding": "a list or fixed-size list of floats",
    "text": "strings",
}


def column_kind(dtype: pa.DataType) -> Kind | None:
    """The kind of data a column of this Arrow type can hold, if any."""
    if _is_binary(dtype):
        return "image"
    if pa.types.is_struct(dtype):
        idx = dtype.get_field_index("bytes")
        return "image" if idx >= 0 and _is_binary(dtype.field(idx).type) else None
    if (
        pa.types.is_list(dtype)
        or pa.types.is_large_list(dtype)
        or pa.types.is_fixed_size_list(dtype)
    ):
        value = dtype.value_type
        return "embedding" if pa.types.is_floating(value) or pa.types.is_integer(value) else None
    if _is_string(dtype):
        return "text"
    return None


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def choose_column(
    schema: pa.Schema, where: str, text_column: str | None = None
) -> tuple[str, Kind]:
    """The data column and its kind; raises naming the columns found when none fits."""
    types = {f.name: f.type for f in schema}
    found = ", ".join(f"{n} ({t})" for n, t in types.items())
    if text_column is not None:
        if text_column not in types:
            raise InputError(
                f"{where} has no column {text_column!r}; found: {found}. Pick one of those."
            )
        _expect(where, text_column, types[text_column], "text")
        return text_column, "text"
    for kind, names in COLUMN_NAMES.items():
        for name in names:
            if name in types:
                _expect(where, name, types[name], kind)
                return name, kind
    candidates = {n: column_kind(t) for n, t in types.items() if n not in OPTIONAL_COLUMNS}
    for kind in COLUMN_NAMES:
        of_kind = [n for n, k in candidates.items() if k == kind]
        if len(of_kind) > 1:
            raise InputError(
                f"{where} has several {kind} columns: {of_kind}. Rename the one to use to "
                f"{COLUMN_NAMES[kind][0]!r}"
                + (" or pick it with text_column." if kind == "text" else ".")
            )
        if of_kind:
            return of_kind[0], kind
    raise InputError(
        f"{where} has no column of images, embeddings or text; found: {found}. Expected a "
        "column 'image' (binary bytes or a struct with 'bytes'), 'embedding' (list of floats) "
        "or 'text' (strings)."
    )


def _expect(where: str, name: str, dtype: pa.DataType, kind: Kind) -> None:
    if column_kind(dtype) != kind:
        raise InputError(
            f"{where} column {name!r} has type {dtype}, but {kind} columns must hold "
            f"{EXPECTED[kind]}. Convert the column or rename it."
        )


def read_parquet(path: str | Path, *, text_column: str | None = None) -> Dataset:
    """A Parquet file; other scalar columns (flags, licences) are kept in ``extra``.

    Image bytes are not read here: they are streamed one row group at a time when used.
    """
    path = Path(path)
    where = str(path)
    try:
        schema = pq.read_schema(path)
        data_col, kind = choose_column(schema, where, text_column)
        extras = [
            f.name
            for f in schema
            if f.name not in (data_col, *OPTIONAL_COLUMNS) and _is_scalar(f.type)
        ]
        small = [c for c in OPTIONAL_COLUMNS if c in schema.names] + extras
        table = pq.read_table(path, columns=small + ([] if kind == "image" else [data_col]))
        null = _null_rows(path, data_col) if kind == "image" else _nulls(table.column(data_col))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"cannot read {path} as Parquet: {exc}. Is it a Parquet file?") from exc
    if table.num_rows == 0:
        raise InputError(f"{path} holds no rows. Point it at a non-empty Parquet file.")
    cw = f"{path} column {data_col!r}"
    table, rows = kept_table(table, null, cw)
    from gmvaluator.sources.tables import table_dataset  # tables reads its columns from here

    def items(ids: np.ndarray) -> object:  # a bad image is named by its id
        if kind == "image":
            return ImageItems(blobs=ParquetBlobs(path, data_col, rows), names=[str(i) for i in ids])
        return {"embedding": _embeddings, "text": _texts}[kind](table.column(data_col), cw)

    return table_dataset(
        where, kind, len(rows), table, data_col, items,
        lambda: np.array([f"row-{i}" for i in rows], dtype=str),
    )  # fmt: skip


class ParquetBlobs(Sequence[bytes]):
    """The image bytes of some rows of a Parquet column, read one row group at a time.

    Items are read in order during embedding, so each row group is decoded once and at most
    one is held in memory.
    """

    def __init__(self, path: Path, column: str, rows: np.ndarray) -> None:
        self.path, self.column, self.rows = path, column, np.asarray(rows, dtype=np.int64)
        meta = pq.ParquetFile(path).metadata
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        self._starts = np.concatenate([[0], np.cumsum(sizes)])
        self._group, self._cache = -1, []  # type: tuple[int, list[bytes | None]]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        row = int(self.rows[i])
        group = int(np.searchsorted(self._starts, row, side="right") - 1)
        if group != self._group:
            col = pq.ParquetFile(self.path).read_row_group(group, columns=[self.column])[0]
            if pa.types.is_struct(col.type):
                col = pc.struct_field(col, "bytes")
            self._group, self._cache = group, col.to_pylist()
        return self._cache[row - int(self._starts[group])]

    def take(self, rows: np.ndarray) -> ParquetBlobs:
        return ParquetBlobs(self.path, self.column, self.rows[np.asarray(rows, dtype=np.int64)])


def _null_rows(path: Path, column: str) -> np.ndarray:
    """Which rows of an image column are null. Row groups whose statistics say they have no
    nulls are not read at all; the others are read one at a time."""
    pf = pq.ParquetFile(path)
    index = pf.schema_arrow.get_field_index(column)
    leaf = _leaf_index(pf, column, index)
    masks = []
    for g in range(pf.metadata.num_row_groups):
        group = pf.metadata.row_group(g)
        stats = group.column(leaf).statistics if leaf is not None else None
        if stats is not None and stats.has_null_count and stats.null_count == 0:
            masks.append(np.zeros(group.num_rows, dtype=bool))
        else:
            masks.append(_nulls(pf.read_row_group(g, columns=[column])[0]))
    return np.concatenate(masks) if masks else np.zeros(0, bool)


def _leaf_index(pf: pq.ParquetFile, column: str, index: int) -> int | None:
    """The Parquet leaf column holding the bytes (a struct column's 'bytes' field)."""
    for i in range(pf.metadata.num_columns):
        path = pf.schema.column(i).path
        if path in (column, f"{column}.bytes"):
            return i
    return None


def _nulls(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_struct(col.type):
        col = pc.struct_field(col, "bytes")
    return np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), dtype=bool)


def kept_table(table: pa.Table, null: np.ndarray, where: str) -> tuple[pa.Table, np.ndarray]:
    """The rows of ``table`` with data and their numbers (``null`` marks the empty ones of the
    data column ``where``): an empty row raises, or is reported and dropped under --on-error
    skip."""
    for row in np.flatnonzero(null):
        msg = f"{where} is empty (null) at row {row}. Fill or drop that row."
        on_bad_item(f"row-{row}", InputError(msg))
    rows = np.flatnonzero(~null)
    if len(rows) < table.num_rows:
        table = table.take(pa.array(rows))
    return table, rows


def _is_scalar(t: pa.DataType) -> bool:
    return (
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or _is_string(t)
    )


def _optional(table: pa.Table, name: str, path: Path) -> np.ndarray | None:
    if name not in table.column_names:
        return None
    col = table.column(name)
    _no_nulls(col, f"{path} column {name!r}")
    if column_kind(col.type) not in ("text", None) or pa.types.is_struct(col.type):
        raise InputError(
            f"{path} column {name!r} has type {col.type}. Use strings or numbers, or drop it."
        )
    return _to_numpy(col)


def _to_numpy(col: pa.ChunkedArray) -> np.ndarray:
    # Arrow strings come out as objects; a str array is what ids and the rest of numpy expect.
    if _is_string(col.type) and not col.null_count:
        return np.array(col.to_pylist(), dtype=str)
    return col.to_numpy()


def _no_nulls(col: pa.ChunkedArray, where: str) -> None:
    if col.null_count:
        row = pc.index(pc.is_null(col), True).as_py()
        raise InputError(f"{where} is empty (null) at row {row}. Fill or drop that row.")


def _image_items(col: pa.ChunkedArray, where: str) -> ImageItems:
    if pa.types.is_struct(col.type):
        col = pc.struct_field(col, "bytes")
        where = f"{where} field 'bytes'"
    _no_nulls(col, where)
    return ImageItems(blobs=col.to_pylist())


def _embeddings(col: pa.ChunkedArray, where: str) -> np.ndarray:
    _no_nulls(col, where)
    arr = col.combine_chunks()
    lengths = pc.list_value_length(arr).to_numpy()
    if len(set(lengths.tolist())) != 1:
        row = int(np.argmax(lengths != lengths[0]))
        raise InputError(
            f"{where} has embeddings of different lengths: row 0 has {lengths[0]}, row {row} has "
            f"{lengths[row]}. Give every row the same dimension."
        )
    values = arr.flatten()
    if values.null_count:
        row = pc.index(pc.is_null(values), True).as_py() // max(int(lengths[0]), 1)
        raise InputError(f"{where} has a null value inside row {row}. Recompute that embedding.")
    matrix = values.to_numpy(zero_copy_only=False).reshape(len(arr), int(lengths[0]))
    return as_embeddings(matrix, where)


def _texts(col: pa.ChunkedArray, where: str) -> list[str]:
    _no_nulls(col, where)
    return col.to_pylist()
