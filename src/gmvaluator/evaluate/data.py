"""Data the experiments need: images from a source, attribute groupings, injected outliers."""

from __future__ import annotations

import numpy as np

from gmvaluator.errors import InputError, MissingDependencyError

# Attribute groupings for C2: coarse groups of classes that share a visible attribute.
FASHION_GROUPS = {
    "tops": (0, 2, 4, 6),
    "bottoms": (1,),
    "dresses": (3,),
    "footwear": (5, 7, 9),
    "bags": (8,),
}
DIGIT_GROUPS = {"closed-loop": (0, 6, 8, 9), "open": (1, 2, 3, 4, 5, 7)}


def load_images(spec: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W) grayscale images and int labels of a labelled image source."""
    from gmvaluator.sources import load_source

    ds = load_source(spec)
    array = getattr(ds.items, "array", None)
    if ds.kind != "image" or array is None:
        raise InputError(f"{spec} is not an in-memory image source; use builtin:digits or .npz.")
    if ds.labels is None:
        raise InputError(f"{spec} has no labels; the class-conditional criteria need them.")
    x = np.asarray(array)
    if x.ndim == 4:
        x = x.mean(axis=3)
    if x.dtype != np.uint8:
        x = np.clip(np.round(x * (255.0 if x.max() <= 1 else 1.0)), 0, 255).astype(np.uint8)
    labels = np.asarray(ds.labels)
    _, codes = np.unique(labels, return_inverse=True)
    return x, codes.astype(np.int64)


def groups_for(spec: str) -> dict[str, tuple[int, ...]]:
    """The attribute grouping used for C2 on a built-in source."""
    if "fashion" in spec:
        return FASHION_GROUPS
    if "digits" in spec:
        return DIGIT_GROUPS
    raise InputError(f"no built-in attribute grouping for {spec}; pass an attribute column.")


def noise_images(n: int, shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Gaussian noise images (mean 128, sd 64, clipped) of the given size."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(128, 64, size=(n, *shape)), 0, 255).astype(np.uint8)


def photo_images(n: int, shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Off-distribution images: random crops of scikit-image's sample photos, resized."""
    from PIL import Image

    try:
        from skimage import data as skdata
    except ImportError as exc:
        raise MissingDependencyError(
            "the off-distribution photos of C3 come from scikit-image; "
            "pip install 'gmvaluator[eval]' (or scikit-image)."
        ) from exc

    photos = []
    for name in ("camera", "astronaut", "coffee", "chelsea", "rocket", "moon", "page", "coins"):
        img = np.asarray(getattr(skdata, name)())
        if img.ndim == 3:
            img = img[..., :3].mean(axis=2)
        photos.append(img.astype(np.uint8))
    rng = np.random.default_rng(seed)
    out = np.empty((n, *shape), dtype=np.uint8)
    for i in range(n):
        img = photos[i % len(photos)]
        side = int(rng.integers(min(img.shape) // 4, min(img.shape)))
        r = int(rng.integers(0, img.shape[0] - side + 1))
        c = int(rng.integers(0, img.shape[1] - side + 1))
        crop = Image.fromarray(img[r : r + side, c : c + side])
        out[i] = np.asarray(crop.resize(shape[::-1], Image.Resampling.BILINEAR))
    return out


def inject(
    images: np.ndarray, labels: np.ndarray, n_noise: int, n_photos: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training set with injected outliers at random rows; returns (images, labels, mask).

    Injected items get random class labels, as mislabelled junk would in a scraped set.
    """
    shape = images.shape[1:3]
    extra = np.concatenate(
        [noise_images(n_noise, shape, seed), photo_images(n_photos, shape, seed + 1)]
    )
    rng = np.random.default_rng(seed)
    extra_labels = rng.integers(0, int(labels.max()) + 1, size=len(extra))
    x = np.concatenate([images, extra])
    y = np.concatenate([labels, extra_labels]).astype(np.int64)
    mask = np.r_[np.zeros(len(images), bool), np.ones(len(extra), bool)]
    order = rng.permutation(len(x))
    return x[order], y[order], mask[order]
