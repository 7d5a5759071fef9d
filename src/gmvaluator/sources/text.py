"""Text sources: ``.txt`` (one sample per line) and ``.jsonl`` (one JSON object per line)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gmvaluator import env
from gmvaluator.errors import InputError
from gmvaluator.skips import on_bad_item
from gmvaluator.sources._columns import ITEM_COLUMNS, item_columns
from gmvaluator.sources.base import Dataset

JSONL_OPTIONAL_KEYS = ITEM_COLUMNS
#: Longest line of a text source, in bytes, unless $GMVALUATOR_MAX_TEXT_BYTES says otherwise:
#: a text embedder reads a few hundred tokens of an item, and a line of megabytes only costs
#: memory (a 10 MB line took 2 GB to embed).
MAX_TEXT_BYTES = 1 << 20


def max_text_bytes() -> int:
    cap = env.MAX_TEXT_BYTES.integer()
    if cap is not None and cap < 1:
        raise InputError(f"{env.MAX_TEXT_BYTES.name}={cap} must be at least 1, or unset.")
    return MAX_TEXT_BYTES if cap is None else cap


def _raw_lines(fh, cap: int) -> Iterator[bytes | None]:  # type: ignore[no-untyped-def]
    """Each line of a binary file, or None for a line longer than ``cap`` bytes, which is
    read past in blocks and never held whole."""
    while raw := fh.readline(cap + 1):
        if len(raw) <= cap or (raw.endswith(b"\n") and len(raw.rstrip(b"\r\n")) <= cap):
            yield raw
            continue
        while not raw.endswith(b"\n") and (raw := fh.readline(1 << 16)):
            pass
        yield None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line break) for each non-blank line."""
    cap = max_text_bytes()
    try:
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(_raw_lines(fh, cap), start=1):
                if raw is None:
                    on_bad_item(
                        f"line-{lineno}",
                        InputError(
                            f"{path} line {lineno} is longer than {cap:,} bytes, the limit of "
                            f"one text item. Shorten or split it, raise the limit with "
                            f"{env.MAX_TEXT_BYTES.name}, or pass --on-error skip."
                        ),
                    )
                    continue
                try:
                    line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    on_bad_item(
                        f"line-{lineno}",
                        InputError(
                            f"{path} line {lineno} is not valid UTF-8 ({exc.reason}). Re-save "
                            "the file as UTF-8, or pass --on-error skip."
                        ),
                    )
                    continue
                line = line.rstrip("\r\n")
                if line.strip():
                    yield lineno, line
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}. Check the file's permissions.") from exc


def read_txt(path: str | Path) -> Dataset:
    """One text sample per non-blank line; ids are ``line-<n>`` with 1-based line numbers."""
    path = Path(path)
    numbered = list(_lines(path))
    if not numbered:
        raise InputError(f"{path} holds no text: every line is blank. Put one sample per line.")
    return Dataset(
        name=str(path),
        kind="text",
        ids=np.array([f"line-{n}" for n, _ in numbered], dtype=str),
        items=[line for _, line in numbered],
    )


def read_jsonl(path: str | Path, *, text_column: str | None = None) -> Dataset:
    """One JSON object per line with a text key (default ``text``), optionally an ``id``,
    ``label`` and ``contributor``; ids default to ``line-<n>``."""
    path = Path(path)
    key = text_column or "text"
    rows = []
    for n, line in _lines(path):
        try:
            rows.append((n, _parse_object(path, n, line, key)))
        except InputError as exc:
            on_bad_item(f"line-{n}", exc)
    if not rows:
        raise InputError(
            f"{path} holds no records: every line is blank. Put one JSON object per line."
        )
    texts = [obj[key] for _, obj in rows]
    ids, labels, contributors = item_columns(
        {col: _optional_key(path, rows, col) for col in JSONL_OPTIONAL_KEYS},
        len(rows),
        f"{path} key",
        lambda: np.array([f"line-{ln}" for ln, _ in rows], dtype=str),
    )
    return Dataset(
        name=str(path),
        kind="text",
        ids=ids,
        items=texts,
        labels=labels,
        contributors=contributors,
    )


def _parse_object(path: Path, lineno: int, line: str, key: str) -> dict[str, object]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path} line {lineno} is not valid JSON ({exc.msg}). Fix or remove that line."
        ) from exc
    if not isinstance(obj, dict):
        raise InputError(
            f"{path} line {lineno} is a JSON {type(obj).__name__}, not an object. Write each "
            f'line as {{"{key}": "..."}}.'
        )
    if not isinstance(obj.get(key), str):
        what = "has no" if key not in obj else "has a non-string"
        raise InputError(
            f"{path} line {lineno} {what} {key!r} key (keys: {sorted(obj)}). Give each line a "
            f'string "{key}", or choose the key with text_column.'
        )
    if not obj[key].strip():  # type: ignore[union-attr]
        raise InputError(
            f"{path} line {lineno} has an empty {key!r}. Give it text or drop the line."
        )
    return obj


def _optional_key(path: Path, rows: list[tuple[int, dict[str, object]]], col: str) -> list | None:
    """The values of an optional key: all lines must have it, or none."""
    present = [col in obj and obj[col] is not None for _, obj in rows]
    if not any(present):
        return None
    if not all(present):
        missing = rows[present.index(False)][0]
        first = rows[present.index(True)][0]
        raise InputError(
            f"{path} line {missing} has no {col!r} but line {first} has one. Give every line "
            f"a {col!r} or none."
        )
    values = [obj[col] for _, obj in rows]
    for (lineno, _), v in zip(rows, values, strict=True):
        if isinstance(v, (dict, list)):
            raise InputError(
                f"{path} line {lineno} has a {type(v).__name__} as {col!r}. Use a string or "
                "a number."
            )
    return values
