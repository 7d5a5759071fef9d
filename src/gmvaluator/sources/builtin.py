"""Built-in image sources that need no download: scikit-learn's digits and Fashion-MNIST.

Specs: ``builtin:digits``, ``builtin:fashion-mnist`` (the train split),
``builtin:fashion-mnist:train`` and ``builtin:fashion-mnist:test``, each optionally followed by
a Python slice such as ``[:5000]`` or ``[100:200]``. Ids keep the position in the full split, so
``builtin:fashion-mnist:test[10:]`` starts at ``fashion-mnist/test/000010``.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import re
from pathlib import Path

import numpy as np

from gmvaluator import env
from gmvaluator.errors import InputError
from gmvaluator.sources.base import Dataset, ImageItems

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: The variable that points at another folder (tests and machines without Debian's package).
FASHION_MNIST_ENV = env.FASHION_MNIST_DIR.name
FASHION_MNIST_FILES = {"train": "train", "test": "t10k"}
BUILTINS = ("digits", "fashion-mnist", "fashion-mnist:train", "fashion-mnist:test")

_SPEC = re.compile(r"^builtin:(?P<name>[a-z0-9:-]+)(?:\[(?P<start>-?\d*):(?P<stop>-?\d*)\])?$")
_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801


def load_builtin(spec: str) -> Dataset:
    """The built-in source a ``builtin:`` spec names."""
    match = _SPEC.match(spec.strip())
    if match is None or match["name"] not in BUILTINS:
        raise InputError(
            f"unknown built-in source {spec!r}. Use one of "
            f"{', '.join('builtin:' + b for b in BUILTINS)}, optionally sliced like [:5000]."
        )
    bounds = tuple(int(v) if v else None for v in (match["start"], match["stop"]))
    rows = slice(*bounds)
    name = match["name"]
    if name == "digits":
        return load_digits(rows, name=spec)
    split = name.partition(":")[2] or "train"
    return load_fashion_mnist(split, rows, name=spec)


def load_digits(rows: slice = slice(None), *, name: str = "builtin:digits") -> Dataset:
    """scikit-learn's 1,797 8x8 digits as uint8 images (0-16 scaled to 0-255), int labels."""
    pixels, target = _digits_arrays()
    images = np.round(pixels * (255.0 / 16.0)).astype(np.uint8)
    index = np.arange(len(images))[rows]
    return Dataset(
        name=name,
        kind="image",
        ids=np.array([f"digits/{i:04d}" for i in index], dtype=str),
        items=ImageItems(array=images[index]),
        labels=target[index].astype(np.int64),
    )


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) pixel values 0-16 and the digits.

    Importing sklearn.datasets takes seconds (it pulls in scipy); reading the CSV that scikit-learn
    ships takes milliseconds, so read it directly and fall back to the public loader if its layout
    ever changes.
    """
    csv = _sklearn_digits_csv()
    if csv is not None:
        table = np.loadtxt(csv, delimiter=",")
        if table.shape == (1797, 65):
            return table[:, :64].reshape(-1, 8, 8), table[:, 64].astype(np.int64)
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    return bunch.images, bunch.target


def _sklearn_digits_csv() -> Path | None:
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    for root in (spec.submodule_search_locations or []) if spec else []:
        csv = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            return csv
    return None


def fashion_mnist_dir() -> Path:
    """Where the Fashion-MNIST IDX files are: ``$GMVALUATOR_FASHION_MNIST_DIR`` or Debian's."""
    return env.FASHION_MNIST_DIR.path() or FASHION_MNIST_DIR


def load_fashion_mnist(
    split: str = "train", rows: slice = slice(None), *, name: str | None = None
) -> Dataset:
    """One Fashion-MNIST split as (N, 28, 28) uint8 images with int labels 0-9.

    Only the rows up to the end of ``rows`` are decompressed, so a small slice loads quickly.
    """
    if split not in FASHION_MNIST_FILES:
        raise InputError(f"unknown Fashion-MNIST split {split!r}. Use 'train' or 'test'.")
    if rows.step not in (None, 1):
        raise InputError(f"slice step {rows.step} is not supported. Use [start:stop].")
    prefix = FASHION_MNIST_FILES[split]
    images_path = _find_idx(f"{prefix}-images-idx3-ubyte")
    labels_path = _find_idx(f"{prefix}-labels-idx1-ubyte")
    images, start = _read_idx(images_path, _IDX_IMAGES, rows)
    labels, _ = _read_idx(labels_path, _IDX_LABELS, rows)
    if len(images) != len(labels):
        raise InputError(
            f"{images_path} and {labels_path} hold different numbers of items "
            f"({len(images)} and {len(labels)}). Reinstall the Fashion-MNIST files."
        )
    labels = labels.astype(np.int64)
    return Dataset(
        name=name or f"builtin:fashion-mnist:{split}",
        kind="image",
        ids=np.array([f"fashion-mnist/{split}/{start + i:06d}" for i in range(len(images))]),
        items=ImageItems(array=images),
        labels=labels,
        extra={"class_name": np.array(FASHION_MNIST_CLASSES)[labels]},
    )


def fashion_mnist_available() -> bool:
    """Whether both Fashion-MNIST splits can be read (the demo falls back to digits if not)."""
    try:
        for prefix in FASHION_MNIST_FILES.values():
            _find_idx(f"{prefix}-images-idx3-ubyte")
            _find_idx(f"{prefix}-labels-idx1-ubyte")
    except InputError:
        return False
    return True


def _find_idx(stem: str) -> Path:
    folder = fashion_mnist_dir()
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise InputError(
        f"Fashion-MNIST is not installed: {folder / stem}[.gz] does not exist. Run "
        f"`apt-get install dataset-fashion-mnist` (Debian) or set {FASHION_MNIST_ENV} to a "
        "folder with the IDX files."
    )


def _read_idx(path: Path, magic: int, rows: slice) -> tuple[np.ndarray, int]:
    """The rows of an IDX file that ``rows`` selects, and the index of the first one."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            return _read_idx_stream(fh, path, magic, rows)
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read {path}: {exc}. Reinstall the Fashion-MNIST files.") from exc


def _read_idx_stream(
    fh: io.BufferedIOBase, path: Path, magic: int, rows: slice
) -> tuple[np.ndarray, int]:
    header = fh.read(4)
    if len(header) < 4 or int.from_bytes(header, "big") != magic:
        raise InputError(f"{path} is not an IDX file of the expected type. Reinstall it.")
    ndim = magic & 0xFF
    dims = np.frombuffer(fh.read(4 * ndim), dtype=">u4").astype(int)
    start, stop, _ = rows.indices(int(dims[0]))
    stop = max(start, stop)
    row_size = int(np.prod(dims[1:]))
    # Skipping by reading keeps gzip streams simple; a start past the data gives no rows.
    fh.read(start * row_size)
    body = fh.read((stop - start) * row_size)
    if len(body) != (stop - start) * row_size:
        raise InputError(f"{path} is truncated: it ends before row {stop}. Reinstall it.")
    data = np.frombuffer(body, dtype=np.uint8).reshape(stop - start, *dims[1:])
    return data, start
