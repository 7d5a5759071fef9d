"""Error types. Every error a user can cause is a ``GMValuatorError`` with a message that names
the offending item and the fix; the CLI prints it on one line and exits with ``exit_code``.

Messages speak of Python parameters (``k=50``); ``param`` names them, so that a front end can
point at its own way of setting them (the CLI adds its flags, ``--k``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence


class GMValuatorError(Exception):
    """Base class of every error raised on purpose by gmvaluator."""

    exit_code = 1

    def __init__(self, *args: object, param: str | Sequence[str] | None = None) -> None:
        super().__init__(*args)
        #: The parameter names the message is about, e.g. ("k",); empty when none.
        self.param: tuple[str, ...] = (param,) if isinstance(param, str) else tuple(param or ())


class InputError(GMValuatorError, ValueError):
    """Bad input: a path, a file, a parameter or a combination of them (CLI exit code 2)."""

    exit_code = 2


class ResumeError(InputError):
    """A run folder exists with settings that differ from the ones asked for."""


class MissingDependencyError(GMValuatorError, ImportError):
    """An optional package or a local weights file is missing."""

    exit_code = 2


def check_param(owner: str, name: str, value: object, ok: bool, expected: str) -> None:
    """Raise the one sentence used for every bad parameter (after scikit-learn's validator)."""
    if not ok:
        raise InputError(
            f"The {name!r} parameter of {owner} must be {expected}. Got {value!r} instead.",
            param=name,
        )


_LOCK = threading.Lock()


def __getattr__(name: str) -> type[InputError]:
    """``NotFittedError``: a method of an estimator called before ``fit``.

    It is scikit-learn's ``NotFittedError`` as well as an ``InputError``, so code written for
    either catches it. Importing scikit-learn took 3 s here, so the class is made on first use
    rather than by every import of this module.
    """
    if name != "NotFittedError":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _LOCK:
        if name not in globals():
            from sklearn.exceptions import NotFittedError as SklearnNotFittedError

            doc = "A method or fitted attribute of an estimator used before ``fit``."
            cls = type(name, (InputError, SklearnNotFittedError), {"__doc__": doc})
            cls.__module__ = __name__  # pickled (e.g. by Ray) by its name in this module
            globals()[name] = cls
    return globals()[name]  # type: ignore[no-any-return]
