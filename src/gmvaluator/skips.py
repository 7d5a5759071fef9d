"""What to do with a bad item: stop (the default) or skip it and say why.

Readers and stages call ``on_bad_item(item_id, error)`` where one item is unusable. Under the
default policy that raises ``error``; inside ``collect_skips("skip")`` it records the item and
the reason, and the caller drops the item. Errors about a whole source (a missing column, an
empty file, mismatched dimensions) are always raised: there is nothing to skip.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field

from gmvaluator.errors import InputError, check_param

ON_ERROR = ("raise", "skip")


@dataclass
class SkipLog:
    """The items skipped so far: (source, item id, reason) in the order met."""

    mode: str = "raise"
    source: str = ""
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)


_CURRENT: contextvars.ContextVar[SkipLog | None] = contextvars.ContextVar(
    "gmvaluator_skips", default=None
)


def current() -> SkipLog:
    """The active log; outside ``collect_skips`` a fresh one that raises on every bad item."""
    log = _CURRENT.get()
    return log if log is not None else SkipLog()


@contextlib.contextmanager
def collect_skips(mode: str = "raise", log: SkipLog | None = None) -> Iterator[SkipLog]:
    """Run a block under ``mode`` ("raise" or "skip"), collecting skipped items in ``log``."""
    check_param("collect_skips", "on_error", mode, mode in ON_ERROR, f"one of {ON_ERROR}")
    log = log if log is not None else SkipLog()
    log.mode = mode
    token = _CURRENT.set(log)
    try:
        yield log
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def source_label(name: str) -> Iterator[None]:
    """Tag skips recorded inside the block with the source they came from."""
    log = current()
    before, log.source = log.source, name
    try:
        yield
    finally:
        log.source = before


def on_bad_item(item_id: object, error: InputError) -> None:
    """Raise ``error``, or record the item as skipped when the policy is "skip"."""
    log = current()
    if log.mode != "skip":
        raise error
    log.rows.append((log.source, str(item_id), str(error)))


def skipping() -> bool:
    return current().mode == "skip"
