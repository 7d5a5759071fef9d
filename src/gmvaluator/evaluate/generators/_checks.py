"""Input checks shared by the reference generators: uint8 (N, H, W) images and int labels."""

from __future__ import annotations

import numpy as np

from gmvaluator.errors import InputError, check_param


def is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_labels(labels: np.ndarray, n_classes: int, owner: str) -> np.ndarray:
    """Labels as an int64 array, each in [0, n_classes)."""
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise InputError(
            f"{owner}: labels must be a 1-D int array; got dtype {y.dtype} and shape {y.shape}."
        )
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise InputError(
            f"{owner}: labels must lie in [0, {n_classes}); got values from {y.min()} to "
            f"{y.max()}. Map the classes to 0..{n_classes - 1}."
        )
    return y.astype(np.int64)


def check_sample(labels: np.ndarray, seed: int, n_classes: int, owner: str) -> np.ndarray:
    """The labels of a ``sample(labels, seed)`` call, checked with its seed."""
    y = check_labels(labels, n_classes, owner)
    check_param(owner, "seed", seed, is_int(seed), "an int")
    return y


def check_data(
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    owner: str,
    image_shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Images and their labels, one each; ``image_shape`` is the (H, W) a trained model needs."""
    x = np.asarray(images)
    if x.dtype != np.uint8 or x.ndim != 3:
        raise InputError(
            f"{owner}: images must be a uint8 (N, H, W) grayscale array; got dtype {x.dtype} "
            f"and shape {x.shape}. Scale pixels to 0..255 and drop any channel axis."
        )
    y = check_labels(labels, n_classes, owner)
    if len(y) != len(x):
        raise InputError(f"{owner}: got {len(x)} images but {len(y)} labels; give one label each.")
    if len(x) == 0:
        raise InputError(f"{owner}: images is empty; give at least one image.")
    if image_shape is not None and x.shape[1:] != image_shape:
        raise InputError(
            f"{owner}: images are {x.shape[1]}x{x.shape[2]} but the model was trained on "
            f"{image_shape[0]}x{image_shape[1]} images."
        )
    return x, y


def needs_labels(examples: object, model: str) -> np.ndarray:
    """The int class labels of a batch of run items (``modelaware.Examples``) for a
    class-conditional model; labels that are digit strings (class folders "0", "1", ...) count."""
    labels = getattr(examples, "labels", None)
    ids = getattr(examples, "ids", [])
    if labels is None:
        raise InputError(
            f"{model} is class-conditional, but the items have no labels; put each class in a "
            "sub-folder named by its number, or give a label column."
        )
    try:
        return np.asarray([int(v) for v in np.asarray(labels).tolist()], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        bad = next((i for i, v in zip(ids, np.asarray(labels).tolist(), strict=False)
                    if not str(v).lstrip("-").isdigit()), "?")  # fmt: skip
        raise InputError(
            f"{model} needs class numbers as labels, but item {bad!r} has a label that is not "
            f"one ({exc}); name the class folders 0, 1, 2, ..."
        ) from exc
