"""A folder of image files, searched recursively; images are decoded only when used."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gmvaluator.errors import InputError
from gmvaluator.sources.base import Dataset, ImageItems

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


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
    """Every image under ``root``; ids are the relative paths, labels are left empty."""
    root = Path(root)
    rel = find_images(root)
    if not rel:
        raise InputError(
            f"folder {root} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)} in it "
            "and its sub-folders). Point it at a folder of images."
        )
    ids = np.array(rel, dtype=str)
    return Dataset(
        name=str(root),
        kind="image",
        ids=ids,
        items=ImageItems(paths=[root / r for r in rel], names=rel),
    )
