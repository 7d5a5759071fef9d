"""A folder of image files, searched recursively; images are decoded only when used.

A folder laid out as a Hugging Face ``imagefolder``, with a ``metadata.csv`` or
``metadata.jsonl`` whose ``file_name`` column names its images, takes their labels,
contributors and other columns from that table.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from gmvaluator.errors import InputError
from gmvaluator.sources.base import Dataset, ImageItems

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
#: The tables of an ``imagefolder`` layout, in the order looked for.
METADATA_FILES = ("metadata.csv", "metadata.jsonl", "metadata.parquet")


def find_images(root: str | Path) -> list[str]:
    """Relative paths (forward slashes, sorted) of the image files under ``root``.

    Hidden files and folders (names starting with '.') are skipped: they are the ``._x.jpg``
    resource forks and ``.thumbnails`` caches that macOS and file managers leave behind, and
    they fail to decode.
    """
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = Path(dirpath).relative_to(root)
        for fname in filenames:
            if not fname.startswith(".") and fname.lower().endswith(IMAGE_EXTENSIONS):
                found.append((rel_dir / fname).as_posix())
    # Sorted by the id itself so that the order never depends on the file system.
    return sorted(found)


def read_image_folder(root: str | Path) -> Dataset:
    """Every image under ``root``; ids are the relative paths. Labels and other columns come
    from the folder's metadata table when it has one, else are left empty."""
    root = Path(root)
    rel = find_images(root)
    if not rel:
        raise InputError(
            f"folder {root} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)} in it "
            "and its sub-folders). Point it at a folder of images."
        )
    metadata = next((root / m for m in METADATA_FILES if (root / m).is_file()), None)
    if metadata is not None:
        return _with_metadata(root, metadata, rel)
    ids = np.array(rel, dtype=str)
    return Dataset(
        name=str(root),
        kind="image",
        ids=ids,
        items=ImageItems(paths=[root / r for r in rel], names=rel),
    )


def _with_metadata(root: Path, metadata: Path, rel: list[str]) -> Dataset:
    """The images that ``metadata`` lists, with its columns; every image must be listed."""
    from gmvaluator.sources.tables import read_path_table

    ds = read_path_table(metadata, base=root)
    listed = {Path(p).resolve() for p in ds.items.paths}  # type: ignore[attr-defined]
    unlisted = [r for r in rel if (root / r).resolve() not in listed]
    if unlisted:
        raise InputError(
            f"folder {root} has {metadata.name}, which does not list {len(unlisted)} of its "
            f"images, e.g. {unlisted[0]!r}. Add a row for each (file_name relative to the "
            "folder) or move them out."
        )
    return replace(ds, name=str(root))
