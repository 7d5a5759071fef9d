"""Parquet sources: one column of image bytes, embeddings or text, plus optional columns.

The data column is chosen by name first (image, then embedding, then text names), then by type;
``text_column`` picks a text column explicitly. Image columns are binary, or structs with a
``bytes`` field as HuggingFace ``datasets`` writes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gmvaluator.errors import InputError
from gmvaluator.sources._columns import (
    as_contributors,
    as_embeddings,
    as_ids,
    as_labels,
)
from gmvaluator.sources.base import Dataset, ImageItems, Kind

COLUMN_NAMES: dict[Kind, tuple[str, ...]] = {
    "image": ("image", "img", "images"),
    "embedding": ("embedding", "embeddings", "emb", "vector"),
    "text": ("text", "caption", "prompt", "sentence"),
}
OPTIONAL_COLUMNS = ("id", "label", "contributor")
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
    """A Parquet file; other scalar columns (flags, licences) are kept in ``extra``."""
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
        wanted = [data_col] + [c for c in OPTIONAL_COLUMNS if c in schema.names] + extras
        table = pq.read_table(path, columns=wanted)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"cannot read {path} as Parquet: {exc}. Is it a Parquet file?") from exc
    if table.num_rows == 0:
        raise InputError(f"{path} holds no rows. Point it at a non-empty Parquet file.")
    n = table.num_rows
    col = table.column(data_col)
    cw = f"{path} column {data_col!r}"
    items = {"image": _image_items, "embedding": _embeddings, "text": _texts}[kind](col, cw)
    opt = {c: _optional(table, c, path) for c in OPTIONAL_COLUMNS}
    return Dataset(
        name=where,
        kind=kind,
        ids=np.array([f"row-{i}" for i in range(n)], dtype=str)
        if opt["id"] is None
        else as_ids(opt["id"], n, f"{path} column 'id'"),
        items=items,
        labels=None
        if opt["label"] is None
        else as_labels(opt["label"], n, f"{path} column 'label'"),
        contributors=None
        if opt["contributor"] is None
        else as_contributors(opt["contributor"], n, f"{path} column 'contributor'"),
        extra={c: _to_numpy(table.column(c)) for c in extras},
    )


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
