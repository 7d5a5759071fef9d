"""Tables of image paths and lists of paths: the inputs that name image files instead of
holding them.

A table (``.csv``, ``.tsv``, ``.parquet``, ``.jsonl``) has one column of paths, relative to the
table's folder or absolute, and optional ``id``, ``label``, ``contributor``, ``licence`` and
``opt_out`` columns; any other column of strings or numbers is kept in ``Dataset.extra``. A path
list (``.txt``) has one path per non-empty line. Images are decoded only when used.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from gmvaluator.errors import InputError
from gmvaluator.skips import on_bad_item
from gmvaluator.sources._columns import ITEM_COLUMNS, item_columns
from gmvaluator.sources.base import Dataset, ImageItems, Kind
from gmvaluator.sources.parquet import COLUMN_NAMES, _is_scalar, _optional, _to_numpy, column_kind

#: The column names that hold image paths, in order of preference (``file_name`` is what
#: Hugging Face ``imagefolder`` metadata uses).
PATH_COLUMNS = ("file_name", "path", "image_path", "filepath", "file", "filename", "image", "img")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl")
# Columns read as strings whatever they look like: "007" stays an id, not the number 7.
_STRING_COLUMNS = ("id", "contributor", "licence", "license", *PATH_COLUMNS)


def read_path_table(path: str | Path, *, base: Path | None = None) -> Dataset:
    """The images a table names, with its optional columns; ids default to the paths as written.

    ``base`` is the folder relative paths start from (the table's own folder by default).
    """
    path = Path(path)
    table = read_table(path)
    column = path_column(table.schema)
    if column is None:
        raise InputError(
            f"{path} has no column of image paths; found columns {table.column_names}. Name "
            f"the column of paths one of {list(PATH_COLUMNS[:4])}."
        )
    rows, files = _existing_files(
        table.column(column).to_pylist(), base or path.parent, f"{path} column {column!r}"
    )
    if not rows:
        raise InputError(f"{path} names no images. Put one image path per row.")
    table = table.take(pa.array(rows, type=pa.int64()))
    written = [str(p) for p in table.column(column).to_pylist()]
    return _dataset(path, files, written, table, column)


def read_path_list(path: str | Path) -> Dataset:
    """A ``.txt`` file of image paths, one per non-empty line (relative to the file's folder)."""
    path = Path(path)
    lines = _path_lines(path)
    rows, files = _existing_files(lines, path.parent, str(path), row_name="line")
    if not rows:
        raise InputError(f"{path} lists no images. Put one image path per line.")
    written = [lines[r] for r in rows]
    return _dataset(path, files, written, pa.table({}), None)


def path_list_of(path: str | Path, suffixes: tuple[str, ...]) -> str | None:
    """What a ``.txt`` file lists when every non-empty line is an existing file: ``"files"``,
    or ``"suffixes"`` when every one of them also ends in ``suffixes``; None when it is not a
    list of files. The first line that is not a file settles it, so a text corpus is told at
    once."""
    path = Path(path)
    lines, all_suffixed = 0, True
    try:
        with open(path, encoding="utf-8-sig", errors="strict") as fh:
            for raw in fh:
                line = raw.strip()
                if not line:
                    continue
                if len(line) > 4096 or not _resolve(path.parent, line).is_file():
                    return None
                all_suffixed = all_suffixed and line.lower().endswith(suffixes)
                lines += 1
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if lines == 0:
        return None
    return "suffixes" if all_suffixed else "files"


def names_paths(path: str | Path) -> bool:
    """Whether a ``.parquet`` or ``.jsonl`` file is a table of image paths rather than a table
    of image bytes, embeddings or text: it has a path column of strings, no image, embedding
    or text column, and its first path is an existing file."""
    path = Path(path)
    try:
        first = _first_row(path)
    except (pa.ArrowException, OSError, ValueError):
        return False  # the Parquet or JSON Lines reader reports what is wrong with it
    if first is None:
        return False
    schema, row = first
    column = path_column(schema)
    if column is None or any(name in schema.names for name in COLUMN_NAMES["text"]):
        return False
    if any(column_kind(f.type) in ("image", "embedding") for f in schema):
        return False
    value = row.get(column)
    return isinstance(value, str) and _resolve(path.parent, value).is_file()


def path_column(schema: pa.Schema) -> str | None:
    """The column of paths: the first of ``PATH_COLUMNS`` that holds strings."""
    types = {f.name: f.type for f in schema}
    for name in PATH_COLUMNS:
        if name in types and (
            pa.types.is_string(types[name]) or pa.types.is_large_string(types[name])
        ):
            return name
    return None


def read_table(path: Path) -> pa.Table:
    """A ``.csv``, ``.tsv``, ``.parquet`` or ``.jsonl`` file as an Arrow table."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            strings = {name: pa.string() for name in _STRING_COLUMNS}
            return pa_csv.read_csv(
                path,
                parse_options=pa_csv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ","),
                convert_options=pa_csv.ConvertOptions(column_types=strings),
            )
        if suffix == ".parquet":
            return pq.read_table(path)
        if suffix == ".jsonl":
            return pa_json.read_json(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"cannot read {path} as a {suffix[1:].upper()} table: {exc}. Check the file."
        ) from exc
    raise InputError(f"{path}: a table of paths must be one of {', '.join(TABLE_SUFFIXES)}.")


def _first_row(path: Path) -> tuple[pa.Schema, dict[str, object]] | None:
    if path.suffix.lower() == ".parquet":
        pf = pq.ParquetFile(path)
        if pf.metadata.num_rows == 0:
            return None
        batch = next(pf.iter_batches(batch_size=1))
        return pf.schema_arrow, batch.to_pylist()[0]
    with open(path, encoding="utf-8-sig") as fh:
        for line in fh:
            if line.strip():
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    return None
                schema = pa.schema(
                    [(k, pa.string() if isinstance(v, str) else pa.null()) for k, v in obj.items()]
                )
                return schema, obj
    return None


def _path_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}. Save it as UTF-8 text.") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def _resolve(base: Path, written: str) -> Path:
    p = Path(written).expanduser()
    return p if p.is_absolute() else base / p


def _existing_files(
    values: Sequence[object], base: Path, where: str, row_name: str = "row"
) -> tuple[list[int], list[Path]]:
    """The rows whose path names an existing file, and those files. A missing or empty path
    raises, or is reported and dropped under ``--on-error skip``."""
    rows, files = [], []
    for i, value in enumerate(values):
        written = "" if value is None else str(value).strip()
        file = _resolve(base, written) if written else None
        if file is None or not file.is_file():
            what = "is empty" if file is None else f"names {written!r}, which is not a file"
            on_bad_item(
                written or f"{row_name}-{i + 1}",
                InputError(
                    f"{where} {row_name} {i + 1} {what}. Fix the path (relative paths start "
                    f"at {base}) or drop that {row_name}."
                ),
            )
            continue
        rows.append(i)
        files.append(file)
    return rows, files


def _dataset(
    path: Path, files: list[Path], written: list[str], table: pa.Table, column: str | None
) -> Dataset:
    return table_dataset(
        str(path),
        "image",
        len(files),
        table,
        column,
        lambda ids: ImageItems(paths=files, names=[str(i) for i in ids]),
        lambda: np.array(written, dtype=str),
    )


def table_dataset(
    name: str,
    kind: Kind,
    n: int,
    table: pa.Table,
    column: str | None,
    items: Callable[[np.ndarray], object],
    default_ids: Callable[[], np.ndarray],
) -> Dataset:
    """The ``n`` items of an Arrow table as a Dataset: ids, labels and contributors from its
    optional columns (``default_ids()`` when it has no ids), every other scalar column but the
    data ``column`` in ``extra``, and the items ``items(ids)`` gives."""
    ids, labels, contributors = item_columns(
        {c: _optional(table, c, Path(name)) for c in ITEM_COLUMNS},
        n,
        f"{name} column",
        default_ids,
    )
    extras = [
        f.name for f in table.schema if f.name not in (column, *ITEM_COLUMNS) and _is_scalar(f.type)
    ]
    return Dataset(
        name=name,
        kind=kind,
        ids=ids,
        items=items(ids),
        labels=labels,
        contributors=contributors,
        extra={c: _to_numpy(table.column(c)) for c in extras},
    )
