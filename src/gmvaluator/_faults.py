"""Named points where a test can make the process die (SIGKILL), to prove that no output is
ever torn and that a re-run resumes. Inert unless ``GMVALUATOR_KILL_AT`` is set.

``GMVALUATOR_KILL_AT=name:N`` kills the process the N-th time (1-based) it reaches ``name``.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def checkpoint(name: str) -> None:
    spec = os.environ.get("GMVALUATOR_KILL_AT")
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
