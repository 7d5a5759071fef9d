"""Thumbnails and text snippets of the items a report shows, from the run's own sources.

The sources named in ``RUN/config.json`` are reopened with ``load_source``; images are decoded
lazily, so only the items on the page are ever read. A source that cannot be reopened (moved,
deleted) leaves the page without pictures and with a note saying why.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from PIL import Image

from gmvaluator.errors import GMValuatorError
from gmvaluator.sources import Dataset, load_source

THUMB_PX = 96  # longest side of an embedded thumbnail; small images keep their size
SNIPPET_CHARS = 280


class Media:
    """Pictures or text of one source, by row, checked against the ids the run recorded."""

    def __init__(self, dataset: Dataset | None, note: str | None = None) -> None:
        self.dataset = dataset
        self.note = note
        self._cache: dict[int, str | None] = {}
        self._rows: dict[str, int] | None = None

    @classmethod
    def open(
        cls, spec: str | None, role: str, text_column: str | None = None, kind: str | None = None
    ) -> Media:
        if not spec:
            return cls(None, f"the run records no {role} source, so no {role} items are shown")
        try:
            ds = load_source(spec, text_column=text_column, kind=kind)
        except (GMValuatorError, OSError) as exc:
            return cls(None, f"the {role} source {spec} could not be reopened ({exc})")
        note = None
        if ds.kind == "embedding":
            note = f"the {role} source {spec} holds embeddings: items are shown by id"
        return cls(ds, note)

    @property
    def kind(self) -> str | None:
        return self.dataset.kind if self.dataset is not None else None

    def row_of(self, item_id: str, row: int | None = None) -> int | None:
        """The source row of ``item_id``; ``row`` is tried first (it is right unless the source
        changed since the run)."""
        ds = self.dataset
        if ds is None:
            return None
        if row is not None and 0 <= row < len(ds) and ds.ids[row] == item_id:
            return row
        if self._rows is None:
            self._rows = {str(i): r for r, i in enumerate(ds.ids)}
        return self._rows.get(item_id)

    def image(self, item_id: str, row: int | None = None) -> str | None:
        """A data URI of the item's thumbnail, or None when it is not an image."""
        r = self._row_of_kind("image", item_id, row)
        if r is None:
            return None
        if r not in self._cache:
            self._cache[r] = thumbnail_uri(self.dataset.items[r])  # type: ignore[union-attr, index]
        return self._cache[r]

    def text(self, item_id: str, row: int | None = None) -> str | None:
        """The item's text, cut to a snippet (not escaped), or None when it is not text."""
        r = self._row_of_kind("text", item_id, row)
        return None if r is None else snippet(self.dataset.items[r])  # type: ignore[union-attr, index]

    def _row_of_kind(self, kind: str, item_id: str, row: int | None) -> int | None:
        return self.row_of(item_id, row) if self.kind == kind else None

    def label_of(self, item_id: str) -> object | None:
        ds = self.dataset
        r = self.row_of(item_id)
        return None if ds is None or ds.labels is None or r is None else ds.labels[r]

    def labels(self, ids: np.ndarray) -> np.ndarray | None:
        """The source's labels in the order of ``ids``, or None when it has none or changed."""
        ds = self.dataset
        if ds is None or ds.labels is None:
            return None
        if len(ds.ids) == len(ids) and np.array_equal(ds.ids.astype(str), ids):
            return np.asarray(ds.labels)
        rows = [self.row_of(str(i)) for i in ids]
        if any(r is None for r in rows):
            return None
        return np.asarray(ds.labels)[np.asarray(rows, dtype=np.int64)]


class MediaSet:
    """Several sources read as one, in order: the generated batches of an appended run."""

    def __init__(self, parts: list[Media]) -> None:
        self.parts = parts

    @classmethod
    def open(
        cls,
        specs: list[str | None],
        role: str,
        text_column: str | None = None,
        kind: str | None = None,
    ) -> MediaSet:
        return cls([Media.open(spec, role, text_column, kind) for spec in specs])

    @property
    def kind(self) -> str | None:
        return next((p.kind for p in self.parts if p.kind is not None), None)

    @property
    def note(self) -> str | None:
        return "; ".join(p.note for p in self.parts if p.note) or None

    def image(self, item_id: str, row: int | None = None) -> str | None:
        # ``row`` counts from the first batch, so it is only a hint for the first source
        found = (p.image(item_id, row if i == 0 else None) for i, p in enumerate(self.parts))
        return next((uri for uri in found if uri is not None), None)

    def text(self, item_id: str, row: int | None = None) -> str | None:
        found = (p.text(item_id, row if i == 0 else None) for i, p in enumerate(self.parts))
        return next((t for t in found if t is not None), None)

    def labels(self, ids: np.ndarray) -> np.ndarray | None:
        """Labels of ``ids`` from whichever source holds each, or None if any is unknown."""
        if len(self.parts) == 1:
            return self.parts[0].labels(ids)
        out: list[object] = []
        for item_id in ids:
            label = next(
                (lab for p in self.parts if (lab := p.label_of(str(item_id))) is not None), None
            )
            if label is None:
                return None
            out.append(label)
        return np.asarray(out)


def thumbnail_uri(image: Image.Image, px: int = THUMB_PX) -> str:
    """A PNG (or, for photos, a smaller JPEG) data URI of ``image`` at most ``px`` wide/high."""
    im = image
    if im.mode not in ("L", "RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
    if max(im.size) > px:
        im = im.copy()
        im.thumbnail((px, px), Image.Resampling.LANCZOS)
    png = _encode(im, "PNG")
    best, mime = png, "image/png"
    if len(png) > 6000 and im.mode != "RGBA":
        jpeg = _encode(im, "JPEG", quality=85)
        if len(jpeg) < len(png):
            best, mime = jpeg, "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(best).decode("ascii")


def _encode(im: Image.Image, fmt: str, **options: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, optimize=True, **options)
    return buf.getvalue()


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
