"""Checks for optional packages, so a missing one fails at construction and names its fix."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Any

from gmvaluator.errors import MissingDependencyError


def require(module: str, pip_name: str, why: str) -> None:
    """Raise MissingDependencyError unless ``module`` can be imported; does not import it."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingDependencyError(
            f"{why} needs the package {pip_name!r}, which is not installed. "
            f"Install it with: pip install {pip_name}"
        )


def import_optional(module: str, pip_name: str, why: str) -> Any:
    """Import an optional package; raise MissingDependencyError when it is absent or fails to
    import (e.g. torchvision built for another torch), naming the cause and the fix."""
    require(module, pip_name, why)
    try:
        return importlib.import_module(module)
    except Exception as exc:  # a broken install fails in many ways, all to be reported alike
        raise MissingDependencyError(
            f"{why} needs the package {pip_name!r}, which is installed but fails to import: "
            f"{type(exc).__name__}: {exc}. Reinstall it (and what it needs, such as a torchvision "
            f"built for this torch) with: pip install --force-reinstall {pip_name}"
        ) from exc


def dist_version(pip_name: str) -> str:
    """The installed version of a distribution, or "unknown" (e.g. a source checkout)."""
    try:
        return importlib.metadata.version(pip_name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
