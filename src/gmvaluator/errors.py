"""Error types. Every error a user can cause is a ``GMValuatorError`` with a message that names
the offending item and the fix; the CLI prints it on one line and exits with ``exit_code``."""

from __future__ import annotations


class GMValuatorError(Exception):
    """Base class of every error raised on purpose by gmvaluator."""

    exit_code = 1


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
            f"The {name!r} parameter of {owner} must be {expected}. Got {value!r} instead."
        )
