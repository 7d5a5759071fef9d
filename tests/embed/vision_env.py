"""The second test environment (.venv-vision): import a library that needs torchvision, or skip
the whole test module with a reason that says where it runs."""

from __future__ import annotations

import importlib
from typing import Any

import pytest


def import_or_skip(name: str, needs: str) -> Any:
    """``name`` imported, else skip the calling module (``needs`` says what it needs)."""
    try:
        return importlib.import_module(name)
    except Exception as e:  # PyPI's torchvision raises RuntimeError beside another torch build
        pytest.skip(
            f"needs {needs} and torchvision beside torch: run scripts/test-vision.sh "
            f"({name}: {type(e).__name__}: {e})",
            allow_module_level=True,
        )
