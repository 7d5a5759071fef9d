"""Shared fixtures: real data, small and seeded."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# CLI runs cache embeddings by default; keep the tests' cache out of the user's own.
if "GMVALUATOR_CACHE" not in os.environ:
    import tempfile

    os.environ["GMVALUATOR_CACHE"] = tempfile.mkdtemp(prefix="gmvaluator-test-cache-")

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits_pixels() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real 8x8 digits as 64-d float32 vectors, with their labels."""
    from gmvaluator.sources import load_source

    ds = load_source("builtin:digits")
    x = np.asarray(ds.items.array, dtype=np.float32).reshape(len(ds), -1) / 255.0
    return x, np.asarray(ds.labels)


@pytest.fixture(scope="session")
def fashion_test_pixels() -> np.ndarray:
    """The first 6,000 real Fashion-MNIST test images as 784-d float32 pixel vectors."""
    from gmvaluator.sources import load_source
    from gmvaluator.sources.builtin import fashion_mnist_available

    if not fashion_mnist_available():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    ds = load_source("builtin:fashion-mnist:test[:6000]")
    return np.asarray(ds.items.array, dtype=np.float32).reshape(len(ds), -1) / 255.0
