"""Checks shared by every reader: ids, labels, contributors, image arrays and embeddings.

Each check takes ``where`` (a path, a path plus a column or key) so that its error message names
the offending item exactly as the user wrote it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from gmvaluator.errors import InputError
from gmvaluator.skips import skipping

# Rows checked at a time for finite values: bounds the temporary bool array on memory-mapped
# inputs of millions of rows.
_FINITE_BLOCK = 1 << 16
#: The optional columns (Parquet) or keys (JSON Lines) that give each item's id, label, contributor.
ITEM_COLUMNS = ("id", "label", "contributor")


def default_ids(prefix: str, n: int, *, start: int = 0) -> np.ndarray:
    """``prefix0, prefix1, ...`` as a str array: the ids of sources that give none."""
    return np.array([f"{prefix}{i}" for i in range(start, start + n)], dtype=str)


def as_ids(values: Sequence[object] | np.ndarray, n: int, where: str) -> np.ndarray:
    """User-given ids as a 1-D str array of length ``n``."""
    arr = _one_column(values, n, where)
    if arr.dtype.kind not in "USiu":
        raise InputError(
            f"{where} holds {arr.dtype} values; ids must be strings or integers. Convert them "
            "or drop them to use row numbers."
        )
    return arr.astype(str)


def as_labels(values: Sequence[object] | np.ndarray, n: int, where: str) -> np.ndarray:
    """Labels as a 1-D array of length ``n``; ints stay ints, anything else becomes str."""
    arr = _one_column(values, n, where)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)  # a float column of whole numbers, as pandas writes them
    return arr.astype(str)


def as_contributors(values: Sequence[object] | np.ndarray, n: int, where: str) -> np.ndarray:
    """Contributors as a 1-D str array of length ``n`` (they are group keys, never numbers)."""
    return _one_column(values, n, where).astype(str)


def item_columns(
    given: Mapping[str, Sequence[object] | np.ndarray | None],
    n: int,
    where: str,
    default_ids: Callable[[], np.ndarray],
    names: tuple[str, ...] = ITEM_COLUMNS,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """A source's ids, labels and contributors, checked: ``given`` maps ``names`` (in that
    order) to the values the source holds, or None; each is named ``f"{where} {name!r}"`` in
    errors. ``default_ids()`` are the ids when it gives none."""
    ids, labels, contributors = (given.get(name) for name in names)
    id_name, label_name, contributor_name = names
    return (
        default_ids() if ids is None else as_ids(ids, n, f"{where} {id_name!r}"),
        None if labels is None else as_labels(labels, n, f"{where} {label_name!r}"),
        None
        if contributors is None
        else as_contributors(contributors, n, f"{where} {contributor_name!r}"),
    )


def _one_column(values: Sequence[object] | np.ndarray, n: int, where: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != n:
        raise InputError(
            f"{where} has shape {arr.shape} but the source has {n} items. Give one value per item."
        )
    if arr.dtype.kind == "O":
        bad = next((i for i, v in enumerate(arr) if v is None), None)
        if bad is not None:
            raise InputError(f"{where} is missing a value at row {bad}. Fill or drop it.")
    return arr


def as_embeddings(array: np.ndarray, where: str) -> np.ndarray:
    """An (N, D) float array as float32, checked for finite values, row by row block."""
    if array.ndim != 2 or array.dtype.kind not in "fiu":
        raise InputError(
            f"{where} has shape {array.shape} and dtype {array.dtype}; embeddings must be a 2-D "
            "(N, D) float array. Save them as float32 with shape (items, dimensions)."
        )
    if array.shape[1] == 0:
        raise InputError(f"{where} has embeddings of dimension 0. Save (N, D) with D >= 1.")
    # A memory-mapped float32 file stays mapped; anything else is converted once.
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        out = array if array.dtype == np.float32 else array.astype(np.float32)
    if skipping():
        return out  # bad rows are found, reported and dropped one by one when embedded
    row = _first_bad_row(out, lambda block: np.isfinite(block).all(axis=1))
    if row is not None:
        raise InputError(
            f"{where} has a non-finite value (NaN, inf, or beyond float32) in row {row}. "
            "Drop or recompute that embedding."
        )
    return out


def as_image_array(array: np.ndarray, where: str) -> np.ndarray:
    """An (N,H,W) or (N,H,W,C) array, C in 1/3/4, uint8 or float in [0, 1]."""
    shape_ok = array.ndim == 3 or (array.ndim == 4 and array.shape[3] in (1, 3, 4))
    if not shape_ok:
        raise InputError(
            f"{where} has shape {array.shape}; images must be (N, H, W) or (N, H, W, C) with "
            "C = 1, 3 or 4 channels last. Transpose channels-first arrays with "
            "a.transpose(0, 2, 3, 1)."
        )
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind != "f":
        raise InputError(
            f"{where} has dtype {array.dtype}; images must be uint8 (0-255) or float in "
            "[0, 1]. Convert them, e.g. a.astype(np.uint8)."
        )
    row = _first_bad_row(array, _in_unit_range)
    if row is not None:
        raise InputError(
            f"{where} has a float image at row {row} with values outside [0, 1] (or NaN). "
            "Scale float images to [0, 1] or save them as uint8."
        )
    return array


def _in_unit_range(block: np.ndarray) -> np.ndarray:
    flat = block.reshape(len(block), -1)
    return np.isfinite(flat).all(axis=1) & (flat >= 0).all(axis=1) & (flat <= 1).all(axis=1)


def _first_bad_row(array: np.ndarray, ok_rows: Callable[[np.ndarray], np.ndarray]) -> int | None:
    """The first row that ``ok_rows`` (bool per row of a block) rejects, or None."""
    for start in range(0, array.shape[0], _FINITE_BLOCK):
        ok = ok_rows(array[start : start + _FINITE_BLOCK])
        if not ok.all():
            return start + int(np.argmin(ok))
    return None
