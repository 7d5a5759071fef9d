"""Run the ``gmvaluator`` command line and SIGKILL it at a named point (the kill tests).

    python tests/robustness/kill_at.py POINT ARGS...     (ARGS as for ``gmvaluator``)

POINT is one of

- ``replace:NAME[:N]``: just before the N-th (default first) atomic rename of a finished
  temporary file onto a path that ends with NAME (e.g. ``index/index.faiss``): the temporary
  file is complete and the target still holds its previous version, or nothing;
- ``shard:N``: just after the N-th embedding shard is written (``embed.shards.save_shard``);
- ``run-json``: just before ``run.json``, the last file of a run, is written.

The library has no hook for this: the points are patched here, in the process that runs it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _killer(nth: int) -> Callable[[], None]:
    """A function that SIGKILLs this process on its ``nth`` call."""
    calls = 0

    def hit() -> None:
        nonlocal calls
        calls += 1
        if calls >= nth:
            os.kill(os.getpid(), signal.SIGKILL)

    return hit


def arm(point: str) -> None:
    """Patch the functions at ``point`` (see the module docstring) to SIGKILL the process."""
    kind, _, rest = point.partition(":")
    if kind == "replace":
        name, _, nth = rest.partition(":")
        hit, replace = _killer(int(nth or 1)), os.replace

        def killing_replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            target = Path(dst).as_posix()
            if target == name or target.endswith("/" + name):
                hit()
            replace(src, dst, *args, **kwargs)

        os.replace = killing_replace
    elif kind == "shard":
        from gmvaluator.embed import shards

        hit, save = _killer(int(rest or 1)), shards.save_shard

        def killing_save(*args: Any, **kwargs: Any) -> None:
            save(*args, **kwargs)
            hit()

        shards.save_shard = killing_save  # type: ignore[assignment]
    elif kind == "run-json":
        from gmvaluator.run.folder import RunFolder

        hit, write = _killer(1), RunFolder.write_record

        def killing_write(self: RunFolder, record: dict[str, Any]) -> None:
            hit()
            write(self, record)

        RunFolder.write_record = killing_write  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown kill point {point!r}; see {__file__}")


def main(argv: list[str]) -> None:
    point, *args = argv
    arm(point)
    from gmvaluator.cli import run

    sys.argv = ["gmvaluator", *args]
    run()


if __name__ == "__main__":
    main(sys.argv[1:])
