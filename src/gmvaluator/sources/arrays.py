"""NumPy sources: ``.npy`` (one array) and ``.npz`` (data plus optional ids, labels, contributors).

The array's shape decides the kind: (N, D) float is precomputed embeddings, (N, H, W) or
(N, H, W, C) is images.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from gmvaluator.errors import InputError
from gmvaluator.sources._columns import as_embeddings, as_image_array, default_ids, item_columns
from gmvaluator.sources.base import Dataset, ImageItems

# Keys that may hold the data in an .npz, and the kind each one promises (None: from the shape).
NPZ_DATA_KEYS: dict[str, str | None] = {
    "images": "image",
    "embeddings": "embedding",
    "x": None,
    "arr_0": None,
}
NPZ_COLUMN_KEYS = ("ids", "labels", "contributors")


def read_npy(path: str | Path) -> Dataset:
    """One array saved with ``np.save``; memory-mapped so that large files load lazily."""
    path = Path(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        # Object arrays cannot be memory-mapped or loaded without pickle.
        raise InputError(
            f"cannot read {path}: {exc}. Save a numeric array with np.save (no object dtype)."
        ) from exc
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read {path}: {exc}. Is it a file written by np.save?") from exc
    return dataset_from_array(str(path), array, where=str(path))


def read_npz(path: str | Path) -> Dataset:
    """An archive from ``np.savez`` with one data key and optional ids/labels/contributors."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: _npz_member(npz, key, path) for key in npz.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        # ValueError: numpy took the bytes for a pickle, which is never loaded.
        raise InputError(f"cannot read {path}: {exc}. Is it a file written by np.savez?") from exc
    found = [key for key in NPZ_DATA_KEYS if key in arrays]
    if len(found) != 1:
        raise InputError(
            f"{path} must hold exactly one data array under one of the keys "
            f"{list(NPZ_DATA_KEYS)}; found keys {sorted(arrays)}. Save it with e.g. "
            "np.savez(path, images=...) or np.savez(path, embeddings=...)."
        )
    key = found[0]
    data, expected = arrays.pop(key), NPZ_DATA_KEYS[key]
    columns = {col: arrays.pop(col) for col in NPZ_COLUMN_KEYS if col in arrays}
    n = len(data) if data.ndim else 0
    # Any other per-item array rides along (licence or opt-out flags, for instance).
    extra = {k: v for k, v in arrays.items() if v.ndim >= 1 and len(v) == n}
    return dataset_from_array(
        str(path),
        data,
        where=f"{path} key {key!r}",
        expected_kind=expected,
        ids=columns.get("ids"),
        labels=columns.get("labels"),
        contributors=columns.get("contributors"),
        extra=extra,
        columns_where=f"{path} key",
    )


def _npz_member(npz: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as exc:
        raise InputError(
            f"cannot read key {key!r} of {path}: {exc}. Save it as a numeric or str array "
            "(e.g. np.asarray(ids, dtype=str)), not as objects."
        ) from exc


def dataset_from_array(
    name: str,
    array: np.ndarray,
    *,
    where: str,
    expected_kind: str | None = None,
    ids: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    contributors: np.ndarray | None = None,
    extra: dict[str, np.ndarray] | None = None,
    columns_where: str = "column",
) -> Dataset:
    """A Dataset from an in-memory or memory-mapped array; the shape decides the kind."""
    if array.ndim < 1 or array.shape[0] == 0:
        raise InputError(f"{where} holds no items (shape {array.shape}). Give a non-empty array.")
    kind = expected_kind or ("embedding" if array.ndim == 2 else "image")
    if kind == "embedding":
        items: object = as_embeddings(array, where)
    else:
        items = ImageItems(array=as_image_array(array, where))
    n = array.shape[0]
    given = {"ids": ids, "labels": labels, "contributors": contributors}
    ids, labels, contributors = item_columns(
        given, n, columns_where, lambda: default_ids("row-", n), NPZ_COLUMN_KEYS
    )
    return Dataset(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        ids=ids,
        items=items,
        labels=labels,
        contributors=contributors,
        extra=extra or {},
    )
