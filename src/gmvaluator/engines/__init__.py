"""Engines run the expensive stages of a run (embedding, search): ``local`` in this process,
``ray`` on a Ray cluster. Both implement the protocol in ``engines.base``; the run pipeline
never branches on which one it holds."""

from __future__ import annotations

import contextlib

from gmvaluator.engines.base import Embedded, Engine
from gmvaluator.engines.local import LocalEngine
from gmvaluator.errors import InputError

#: The engines ``open_engine`` knows by name.
ENGINES = ("local", "ray")

__all__ = ["ENGINES", "Embedded", "Engine", "LocalEngine", "open_engine"]


def open_engine(name: str, address: str | None = None) -> contextlib.AbstractContextManager[Engine]:
    """The engine named ``name``, as a context manager: ``local``, or ``ray`` connected to the
    cluster at ``address`` (None: a local cluster started for the run and shut down after)."""
    if name not in ENGINES:
        raise InputError(f"--engine must be one of {ENGINES}; got {name!r}.")
    if name == "local":
        if address is not None:
            raise InputError("--address names a Ray cluster; add --engine ray or drop --address.")
        return contextlib.nullcontext(LocalEngine())
    from gmvaluator.engines.ray import ray_engine

    return ray_engine(address)
