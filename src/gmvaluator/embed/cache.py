"""An embedding cache shared by runs: each item's vector, keyed by its content and the embedder.

    CACHE/<fingerprint-hash>/fingerprint.json       embedder name, version and settings
    CACHE/<fingerprint-hash>/part-<id>.npy          (n, dim) float32 vectors, memory-mapped
    CACHE/<fingerprint-hash>/part-<id>.keys.npy     (n,) 16-byte content keys of those rows

An item's key is a BLAKE2b digest of its bytes as the source holds them (an image file's bytes
with the mode its source reads it in, a text's UTF-8, an array row's raw bytes), so a cached
item is neither decoded nor embedded, and one key always stands for one vector of one dimension.
One folder per embedder fingerprint (``embedder_fingerprint``): another model, version or
preprocessing setting never reads these vectors. A part counts once its keys file exists
(written after the vectors, atomically), so a killed run leaves only whole parts behind, and
several processes may add parts at once.

The cache lives in ``default_cache_dir()``: ``$GMVALUATOR_CACHE``, else
``$XDG_CACHE_HOME/gmvaluator/embeddings``, else ``~/.cache/gmvaluator/embeddings``.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator import env
from gmvaluator.errors import InputError
from gmvaluator.files import read_json, save_npy, write_json

KEY_BYTES = 16
# bump when the key of an item changes meaning; 2: an image's key holds the mode its source
# reads it in (``ImageItems.mode``), so vectors cached under 1 are never read again
_SCHEME = 2


def default_cache_dir() -> Path:
    """Where embeddings are cached when no folder is given."""
    given = env.CACHE.path()
    if given is not None:
        return given
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gmvaluator" / "embeddings"


def item_keys(ds: Any, rows: np.ndarray) -> np.ndarray:
    """The content keys (S16) of rows of a Dataset."""
    out = np.empty(len(rows), dtype=f"S{KEY_BYTES}")
    items = ds.items
    for j, i in enumerate(rows):
        i = int(i)
        if ds.kind == "image":  # the same file is read in "L" or "RGB" by its source's mode
            data = b"image\0" + items.mode.encode() + b"\0" + items.raw_bytes(i)
        elif ds.kind == "text":
            text = items[i]
            data = b"text\0" + (text.encode("utf-8", "surrogatepass") if isinstance(text, str)
                                else repr(text).encode())  # fmt: skip
        else:
            row = np.ascontiguousarray(items[i])
            data = b"array\0" + str(row.dtype).encode() + str(row.shape).encode() + row.tobytes()
        out[j] = hashlib.blake2b(data, digest_size=KEY_BYTES).digest()
    return out


class EmbeddingCache:
    """The cached vectors of one embedder fingerprint under ``root``.

    ``get(keys)`` returns which keys are cached and their vectors; ``put(keys, vectors)``
    writes one new part. ``hits`` and ``added`` count items since the cache was opened.
    """

    def __init__(self, root: str | Path, fingerprint: dict[str, Any]) -> None:
        blob = json.dumps({"scheme": _SCHEME, **fingerprint}, sort_keys=True, default=str)
        self.fingerprint = fingerprint
        self.folder = Path(root) / hashlib.sha256(blob.encode()).hexdigest()[:24]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if not (self.folder / "fingerprint.json").is_file():
                write_json(self.folder / "fingerprint.json", json.loads(blob))
        except OSError as exc:
            raise InputError(
                f"cannot write the embedding cache folder {self.folder}: {exc}. Pass another "
                "folder with --cache DIR, or --cache none."
            ) from exc
        self._parts: list[np.ndarray] = []
        self._where: dict[bytes, tuple[int, int]] = {}
        self._seen: set[str] = set()
        self.hits = 0
        self.added = 0
        self.refresh()

    def refresh(self) -> None:
        """Pick up parts written since the last look (by this or another process)."""
        for keys_path in sorted(self.folder.glob("part-*.keys.npy")):
            name = keys_path.name[: -len(".keys.npy")]
            if name in self._seen:
                continue
            vec_path = self.folder / f"{name}.npy"
            try:
                keys = np.load(keys_path, allow_pickle=False)
                vecs = np.load(vec_path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError):
                continue  # a part another process is still writing, or a damaged one
            if vecs.ndim != 2 or len(vecs) != len(keys):
                continue
            self._seen.add(name)
            number = len(self._parts)
            self._parts.append(vecs)
            for row, key in enumerate(keys.tolist()):
                self._where.setdefault(key, (number, row))

    def __len__(self) -> int:
        return len(self._where)

    def get(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(found: bool per key, vectors of the found keys in order, or None if none)."""
        places = [self._where.get(k) for k in keys.tolist()]
        found = np.array([p is not None for p in places], dtype=bool)
        if not found.any():
            return found, None
        dims = {self._parts[p[0]].shape[1] for p in places if p is not None}
        if len(dims) != 1:
            raise InputError(
                f"the embedding cache {self.folder} holds vectors of dimensions {sorted(dims)} "
                "for one embedder. Delete that folder and re-run."
            )
        vecs = np.stack([self._parts[p[0]][p[1]] for p in places if p is not None])
        self.hits += int(found.sum())
        return found, np.asarray(vecs, dtype=np.float32)

    def put(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors for keys as one new part (nothing when there is nothing to add)."""
        keep = np.array([k not in self._where for k in keys.tolist()], dtype=bool)
        keep &= np.isfinite(vectors).all(axis=1)
        if not keep.any():
            return
        keys, vectors = keys[keep], np.ascontiguousarray(vectors[keep], dtype=np.float32)
        name = f"part-{uuid.uuid4().hex}"
        save_npy(self.folder / f"{name}.npy", vectors)
        save_npy(self.folder / f"{name}.keys.npy", keys)  # last: marks the part complete
        self.added += len(keys)
        self.refresh()


def open_cache(root: str | Path | None, embedder: Any) -> EmbeddingCache | None:
    """The cache for ``embedder`` under ``root``; None when ``root`` is None or the embedder
    is not worth caching (it declares ``cacheable = False``, like ``precomputed``)."""
    if root is None or not getattr(embedder, "cacheable", True):
        return None
    from gmvaluator.embed.dataset import embedder_fingerprint

    return EmbeddingCache(root, {**embedder_fingerprint(embedder), "kind": embedder.kind})


def read_fingerprint(folder: str | Path) -> Any:
    """The fingerprint a cache folder was made for."""
    return read_json(Path(folder) / "fingerprint.json")
