"""Progress bars on stderr: the one way the library shows how far a long stage has come.

Every stage that can take more than a few seconds (embedding, index build and tuning, search,
re-rank, densities, near copies, gradient features, the report) asks ``bar`` for its bar. A
stage shows one when its caller asks (``progress=True``; the command line passes ``not
--quiet``) and stderr is a terminal, so logs and pipes stay clean; ``GMVALUATOR_PROGRESS=1``
shows bars where stderr is not a terminal too (a log file, CI), and ``GMVALUATOR_PROGRESS=0``
hides them everywhere.
"""

from __future__ import annotations

import sys
from typing import Any

from gmvaluator.env import PROGRESS

_OFF = ("0", "false", "no", "off")


def enabled(progress: bool) -> bool:
    """Whether a stage asked to show progress (``progress``) shows it here and now."""
    if not progress:
        return False
    forced = PROGRESS.text()
    if forced is not None:
        return forced.strip().lower() not in _OFF
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def bar(total: int | None, desc: str, *, progress: bool, unit: str = "item") -> Any:
    """A tqdm bar of ``total`` ``unit`` on stderr named ``desc``, or a silent one (see the
    module docstring); use it as a context manager and call ``update(n)`` as work is done."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled(progress),
        file=sys.stderr,
        dynamic_ncols=True,
    )
