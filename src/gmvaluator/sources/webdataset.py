"""WebDataset shards: tar files whose members are grouped into samples by their key.

A sample's key is its member path up to the first dot of the file name (``shard/000123.jpg``
and ``shard/000123.json`` are one sample, ``shard/000123``); its image member is the item, and
side members give its columns: ``.json`` (an object with any of ``id``, ``label``,
``contributor``, ``licence``, ``opt_out``), ``.cls`` (a label), ``.txt`` (its text: the item
of a shard without images, else kept in ``extra``). Shards are read with the standard
library's ``tarfile`` and never unpacked: image bytes are read back from the tar by offset when
used (held in memory for a compressed tar).

Shards are named by one path, a brace pattern (``shards/{000000..000009}.tar``,
``{a,b}.tar``), several joined by ``::``, or a ``.txt`` list of ``.tar`` paths.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gmvaluator.errors import InputError
from gmvaluator.skips import on_bad_item
from gmvaluator.sources._columns import ITEM_COLUMNS, item_columns
from gmvaluator.sources.base import Dataset, ImageItems
from gmvaluator.sources.folder import IMAGE_EXTENSIONS

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")
_SIDE_KEYS = (*ITEM_COLUMNS, "licence", "license", "opt_out")


def is_shard_spec(spec: str) -> bool:
    """Whether ``spec`` names tar shards (a pattern or ``::`` list of them, or one tar)."""
    return any(part.lower().endswith(TAR_SUFFIXES) for part in spec.split("::"))


def expand_shards(spec: str) -> list[str]:
    """The shard paths that ``spec`` names: ``::``-separated parts, braces expanded."""
    out: list[str] = []
    for part in spec.split("::"):
        if part.strip():
            out.extend(expand_braces(part.strip()))
    return out


def expand_braces(pattern: str) -> list[str]:
    """``a{1..3}b`` -> a1b, a2b, a3b (zero padding kept); ``{x,y}`` -> x, y; nested left to
    right."""
    m = _BRACE.search(pattern)
    if m is None:
        return [pattern]
    head, body, tail = pattern[: m.start()], m.group(1), pattern[m.end() :]
    rng = _RANGE.match(body)
    if rng:
        lo, hi = int(rng.group(1)), int(rng.group(2))
        width = len(rng.group(1)) if rng.group(1).startswith("0") else 0
        step = 1 if hi >= lo else -1
        choices = [str(i).zfill(width) for i in range(lo, hi + step, step)]
    else:
        choices = body.split(",")
    return [p for c in choices for p in expand_braces(head + c + tail)]


def read_webdataset(spec: str | Sequence[str | Path], *, name: str | None = None) -> Dataset:
    """Every sample of the shards ``spec`` names, in shard order then member order."""
    shards = [Path(s) for s in (expand_shards(spec) if isinstance(spec, str) else spec)]
    label = name or (spec if isinstance(spec, str) else str(shards[0]))
    missing = [str(s) for s in shards if not s.is_file()]
    if missing:
        raise InputError(
            f"{label}: shard {missing[0]} does not exist"
            + (f" ({len(missing)} of {len(shards)} shards are missing)" if len(missing) > 1 else "")
            + ". Check the path or the brace pattern."
        )
    samples: list[_Sample] = []
    for shard in shards:
        samples.extend(_read_shard(shard))
    with_image = [s for s in samples if s.image is not None]
    if with_image:
        for s in samples:
            if s.image is None:
                on_bad_item(
                    s.key,
                    InputError(
                        f"{s.shard}: sample {s.key!r} has no image member (found "
                        f"{sorted(s.side) or 'nothing'}). Add one or drop the sample."
                    ),
                )
        return _dataset(label, with_image, "image")
    with_text = [s for s in samples if "txt" in s.side]
    if not with_text:
        raise InputError(
            f"{label} holds no samples with an image ({', '.join(IMAGE_EXTENSIONS)}) or .txt "
            "member. Point it at WebDataset shards of images or texts."
        )
    return _dataset(label, with_text, "text")


@dataclass
class _Sample:
    shard: Path
    key: str
    image: tuple[int, int] | bytes | None = None  # (offset, size) in the tar, or the bytes
    side: dict[str, bytes] = field(default_factory=dict)


def _read_shard(shard: Path) -> list[_Sample]:
    """The samples of one shard, in member order; image bytes are left in the tar when it is
    uncompressed."""
    by_key: dict[str, _Sample] = {}
    compressed = not _is_plain_tar(shard)
    try:
        with tarfile.open(shard, "r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, ext = _split(member.name)
                if key is None:
                    continue
                sample = by_key.setdefault(key, _Sample(shard, key))
                if ("." + ext) in IMAGE_EXTENSIONS:
                    if sample.image is not None:
                        raise InputError(
                            f"{shard}: sample {key!r} has two image members. Keep one image "
                            "per sample."
                        )
                    if compressed:
                        sample.image = _member_bytes(tar, member)
                    else:
                        sample.image = (member.offset_data, member.size)
                elif ext in ("json", "cls", "txt"):
                    sample.side[ext] = _member_bytes(tar, member)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(
            f"cannot read {shard} as a tar file: {exc}. Is it a WebDataset shard?"
        ) from exc
    return list(by_key.values())


def _is_plain_tar(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(262)
    return len(head) == 262 and head[257:262] == b"ustar"


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    fh = tar.extractfile(member)
    return b"" if fh is None else fh.read()


def _split(member: str) -> tuple[str | None, str]:
    """(key, extension) of a member path; hidden files give no key."""
    folder, _, fname = member.rpartition("/")
    if not fname or fname.startswith(".") or "." not in fname:
        return None, ""
    stem, _, ext = fname.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


class TarBlobs(Sequence[bytes]):
    """The image bytes of samples, read back from their shards by offset when used."""

    def __init__(self, refs: list[tuple[Path, tuple[int, int] | bytes]]) -> None:
        self.refs = refs

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        shard, ref = self.refs[i]
        if isinstance(ref, bytes):
            return ref
        offset, size = ref
        with open(shard, "rb") as fh:
            fh.seek(offset)
            return fh.read(size)

    def take(self, rows: np.ndarray) -> TarBlobs:
        return TarBlobs([self.refs[int(r)] for r in rows])


def _dataset(label: str, samples: list[_Sample], kind: str) -> Dataset:
    n = len(samples)
    where = f"{label} sample"
    meta = [_side_columns(s) for s in samples]
    given: dict[str, list[object] | None] = {}
    for key in _SIDE_KEYS:
        present = [key in m for m in meta]
        if any(present) and not all(present):
            first = samples[present.index(False)].key
            raise InputError(
                f"{label}: sample {first!r} has no {key!r} but others have one. Give every "
                f"sample a {key!r} or none."
            )
        given[key] = [m[key] for m in meta] if all(present) else None
    ids, labels, contributors = item_columns(
        given, n, where, lambda: np.array([s.key for s in samples], dtype=str)
    )
    extra = {
        key: np.asarray(given[key])
        for key in ("licence", "license", "opt_out")
        if given[key] is not None
    }
    if kind == "image":
        items: object = ImageItems(
            blobs=TarBlobs([(s.shard, s.image) for s in samples]),  # type: ignore[misc]
            names=[str(i) for i in ids],
        )
        if all("txt" in s.side for s in samples):
            extra["text"] = np.array([_utf8(s.side["txt"], label, s) for s in samples], dtype=str)
    else:
        items = [_utf8(s.side["txt"], label, s).strip() for s in samples]
    return Dataset(
        name=label,
        kind=kind,  # type: ignore[arg-type]
        ids=ids,
        items=items,
        labels=labels,
        contributors=contributors,
        extra=extra,
    )


def _side_columns(sample: _Sample) -> dict[str, object]:
    """The columns a sample's ``.json`` and ``.cls`` members give."""
    out: dict[str, object] = {}
    if "json" in sample.side:
        try:
            obj = json.loads(sample.side["json"])
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(
                f"{sample.shard}: {sample.key}.json is not valid JSON ({exc}). Fix that member."
            ) from exc
        if not isinstance(obj, dict):
            raise InputError(
                f"{sample.shard}: {sample.key}.json is a JSON {type(obj).__name__}, not an "
                'object. Write it as {"label": ..., "contributor": ...}.'
            )
        out.update({k: obj[k] for k in _SIDE_KEYS if obj.get(k) is not None})
    if "cls" in sample.side and "label" not in out:
        text = _utf8(sample.side["cls"], str(sample.shard), sample).strip()
        out["label"] = int(text) if re.fullmatch(r"-?\d+", text) else text
    return out


def _utf8(data: bytes, label: str, sample: _Sample) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{label}: a side member of sample {sample.key!r} is not UTF-8 text ({exc.reason}). "
            "Re-save it as UTF-8."
        ) from exc
