"""The in-memory description of a source: ids, items of one kind, and optional columns."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from gmvaluator.errors import InputError

Kind = Literal["image", "text", "embedding"]


class ImageItems(Sequence[Image.Image]):
    """A lazily decoded sequence of images; ``[i]`` returns a PIL image.

    Backed by an array (N,H,W[,C]), by file paths, or by encoded bytes, so that a folder of a
    million files is opened one batch at a time.
    """

    def __init__(
        self,
        *,
        array: np.ndarray | None = None,
        paths: Sequence[Path] | None = None,
        blobs: Sequence[bytes] | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        given = [x is not None for x in (array, paths, blobs)]
        if sum(given) != 1:
            raise ValueError("give exactly one of array, paths, blobs")
        self.array = array
        self.paths = list(paths) if paths is not None else None
        self.blobs = list(blobs) if blobs is not None else None
        self.names = list(names) if names is not None else None

    def __len__(self) -> int:
        if self.array is not None:
            return int(self.array.shape[0])
        return len(self.paths if self.paths is not None else self.blobs)  # type: ignore[arg-type]

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if self.array is not None:
            return array_to_image(self.array[i])
        name = self.names[i] if self.names is not None else str(i)
        if self.paths is not None:
            return open_image(self.paths[i], name)
        return open_image(io.BytesIO(self.blobs[i]), name)  # type: ignore[index]

    def raw_bytes(self, i: int) -> bytes:
        """The bytes that identify item ``i`` (for content hashes)."""
        if self.array is not None:
            return np.ascontiguousarray(self.array[i]).tobytes()
        if self.paths is not None:
            return Path(self.paths[i]).read_bytes()
        return self.blobs[i]  # type: ignore[index]


def array_to_image(a: np.ndarray) -> Image.Image:
    """An (H,W) or (H,W,C) array (uint8, or float in [0,1]) as a PIL image."""
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = np.clip(np.nan_to_num(a.astype(np.float64)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    return Image.fromarray(a)


def open_image(src, name: str) -> Image.Image:  # type: ignore[no-untyped-def]
    """Open and fully decode one image; a broken one raises InputError naming it."""
    try:
        with Image.open(src) as im:
            im.load()
            return im.copy()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read image {name!r}: {exc}. Remove or replace the file.") from exc


@dataclass(frozen=True)
class Dataset:
    """One source read into memory (lazily for images).

    ``items`` is an ``ImageItems`` for images, a list of str for text, or a float32 (N,D) array
    for precomputed embeddings. ``labels`` and ``contributors`` flow through to the results.
    """

    name: str
    kind: Kind
    ids: np.ndarray
    items: object
    labels: np.ndarray | None = None
    contributors: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if n == 0:
            raise InputError(
                f"source {self.name!r} is empty: it holds no items. Point it at a non-empty "
                "folder or file."
            )
        if len(self.items) != n:  # type: ignore[arg-type]
            raise ValueError(f"{self.name}: {len(self.items)} items for {n} ids")  # type: ignore[arg-type]
        for col in ("labels", "contributors"):
            v = getattr(self, col)
            if v is not None and len(v) != n:
                raise ValueError(f"{self.name}: {len(v)} {col} for {n} ids")
        _check_unique_ids(self.name, self.ids)

    def __len__(self) -> int:
        return len(self.ids)


def _check_unique_ids(name: str, ids: np.ndarray) -> None:
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != len(ids):
        dup = uniq[counts > 1][:3].tolist()
        raise InputError(
            f"source {name!r} has duplicate ids, e.g. {dup}. Make the 'id' column unique or "
            "drop it to use row numbers."
        )
