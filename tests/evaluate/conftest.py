"""Digits at a small size, shared by the experiment and CLI tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits_images() -> tuple[np.ndarray, np.ndarray]:
    from gmvaluator.evaluate.data import load_images

    return load_images("builtin:digits")
