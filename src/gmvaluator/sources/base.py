"""The in-memory description of a source: ids, items of one kind, and optional columns."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps

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
        mode: str | None = None,
    ) -> None:
        given = [x is not None for x in (array, paths, blobs)]
        if sum(given) != 1:
            raise ValueError("give exactly one of array, paths, blobs")
        self.array = array
        self.paths = list(paths) if paths is not None else None
        # A lazy sequence (Parquet row groups) stays lazy; anything else becomes a list.
        self.blobs = blobs if blobs is None or hasattr(blobs, "take") else list(blobs)
        self.names = list(names) if names is not None else None
        self._mode: str | None = mode

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
            im = open_image(self.paths[i], name)
        else:
            im = open_image(io.BytesIO(self.blobs[i]), name)  # type: ignore[index]
        return im if im.mode == self.mode else im.convert(self.mode)

    @property
    def mode(self) -> str:
        """The mode every item is read in: "RGB" when any image of the source is in colour,
        "L" when all are greyscale (or the array has one channel).

        Each image is then brought to this mode by itself: a greyscale image among colour
        ones, sorted first or not, is read as RGB and changes neither the others nor the
        dimension of their embeddings. Image files are judged by their headers, and the look
        stops at the first colour one.
        """
        if self._mode is None:
            self._mode = self._find_mode()
        return self._mode

    def _find_mode(self) -> str:
        if self.array is not None:
            a = self.array
            return "L" if a.ndim == 3 or (a.ndim == 4 and a.shape[3] == 1) else "RGB"
        for i in range(len(self)):
            try:
                with Image.open(self._source(i)) as im:
                    single = im.mode in SINGLE_CHANNEL
            except Exception:  # unreadable: named when it is read for real
                continue
            if not single:
                return "RGB"
        return "L"

    def take(self, rows: np.ndarray) -> ImageItems:
        """The items at ``rows`` (an int array), still lazy."""
        if self.array is not None:
            return ImageItems(array=self.array[rows])
        names = [self.names[i] for i in rows] if self.names is not None else None
        mode = self.mode  # the items taken are read as the source reads them
        if self.paths is not None:
            return ImageItems(paths=[self.paths[i] for i in rows], names=names, mode=mode)
        if hasattr(self.blobs, "take"):
            blobs = self.blobs.take(rows)  # type: ignore[union-attr]
        else:
            blobs = [self.blobs[i] for i in rows]  # type: ignore[index]
        return ImageItems(blobs=blobs, names=names, mode=mode)

    def _source(self, i: int) -> Any:
        return self.paths[i] if self.paths is not None else io.BytesIO(self.blobs[i])  # type: ignore[index]

    def raw_bytes(self, i: int) -> bytes:
        """The bytes that identify item ``i`` (for content hashes)."""
        if self.array is not None:
            return np.ascontiguousarray(self.array[i]).tobytes()
        if self.paths is not None:
            return Path(self.paths[i]).read_bytes()
        return self.blobs[i]  # type: ignore[index]


#: PIL modes of one intensity channel, which ``open_image`` reads as "L".
SINGLE_CHANNEL = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"})


def array_to_image(a: np.ndarray) -> Image.Image:
    """An (H,W) or (H,W,C) array (uint8, or float in [0,1]) as a PIL image."""
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = np.clip(np.nan_to_num(a.astype(np.float64)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    return Image.fromarray(a)


#: Images above this many pixels are refused before decoding (a decompression-bomb guard);
#: PIL's own limit, which it only warns about, is the default.
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


def open_image(src, name: str) -> Image.Image:  # type: ignore[no-untyped-def]
    """Open, check and fully decode one image, returned in mode "L" or "RGB".

    EXIF orientation is applied, an animated image gives its first frame, 16-bit and float
    images are scaled to 8 bits, transparency is composited over white, CMYK and palettes
    become RGB. A broken or oversized image raises InputError naming it.
    """
    try:
        with warnings.catch_warnings():
            # The size is checked below against our own limit, with a message that names the file.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(src)
        with im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise InputError(
                    f"image {name!r} has {w}x{h} = {w * h:,} pixels, above the limit of "
                    f"{MAX_IMAGE_PIXELS:,} (a decompression-bomb guard). Downscale the file."
                )
            im.seek(0)
            im.load()
            return to_l_or_rgb(ImageOps.exif_transpose(im))
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read image {name!r}: {exc}. Remove or replace the file.") from exc


def to_l_or_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode as "L" (one channel) or "RGB"; alpha is composited over white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        lo, hi = (0.0, 65535.0) if im.mode.startswith("I;16") else (float(a.min()), float(a.max()))
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        return Image.fromarray(np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(white, rgba)
        return flat.convert("L" if im.mode in ("LA", "La") else "RGB")
    if im.mode in ("L", "RGB"):
        return im.copy()
    if im.mode == "1":
        return im.convert("L")
    return im.convert("RGB")


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
        keep = _unique_rows(self.name, self.ids)
        if keep is not None:  # duplicates skipped: narrow every column to the first of each id
            for key, value in asdict_shallow(self.take(keep)).items():
                object.__setattr__(self, key, value)

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> Dataset:
        """The items at ``rows`` (an int array) with their ids and columns."""
        rows = np.asarray(rows, dtype=np.int64)
        items = self.items
        if isinstance(items, ImageItems):
            items = items.take(rows)
        elif isinstance(items, np.ndarray):
            items = items[rows]
        else:
            items = [items[i] for i in rows]  # type: ignore[index]
        return Dataset(
            name=self.name,
            kind=self.kind,
            ids=self.ids[rows],
            items=items,
            labels=None if self.labels is None else self.labels[rows],
            contributors=None if self.contributors is None else self.contributors[rows],
            extra={k: v[rows] for k, v in self.extra.items()},
        )


def asdict_shallow(ds: Dataset) -> dict[str, object]:
    return {f: getattr(ds, f) for f in ("ids", "items", "labels", "contributors", "extra")}


def _unique_rows(name: str, ids: np.ndarray) -> np.ndarray | None:
    """None when ids are unique; under --on-error skip, the rows to keep (first of each id)."""
    from gmvaluator.skips import on_bad_item, skipping

    uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if len(uniq) == len(ids):
        return None
    dup = uniq[counts > 1][:3].tolist()
    error = InputError(
        f"source {name!r} has duplicate ids, e.g. {dup}. Make the 'id' column unique or "
        "drop it to use row numbers."
    )
    if not skipping():
        raise error
    for row in np.setdiff1d(np.arange(len(ids)), first):
        msg = f"duplicate id {ids[row]!r} in source {name!r}; the first item with it is kept"
        on_bad_item(ids[row], InputError(msg))
    return np.sort(first)
