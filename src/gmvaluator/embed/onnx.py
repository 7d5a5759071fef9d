"""Built-in torch embedders run by ONNX Runtime: exported once, cached, checked against torch.

    CACHE/onnx/<name>-<key>.onnx       the exported network
    CACHE/onnx/<name>-<key>.json       what it was exported from, and the check against torch

``key`` hashes the weights file's bytes, torch's and onnx's versions and the export settings,
so new weights or another exporter make a new file. CACHE is the embedding cache's folder
(``embed.cache.default_cache_dir``). On first use in a process the exported network runs beside
the torch one on a few fixed inputs; a cosine below ``MIN_COSINE`` on any row stops the run
(with the torch runtime as the way out), so an ONNX vector is only ever used where it was shown
to equal torch's.

ONNX Runtime runs a whole batch without the GIL (unlike torch's many small operations), so the
next batch is decoded and preprocessed meanwhile (``embed.readahead``). On a shared two-core
machine EfficientNet-Lite0 ran 3x faster than torch on one thread (bench/embed_throughput.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator import env
from gmvaluator.embed.deps import dist_version, require
from gmvaluator.errors import InputError, MissingDependencyError
from gmvaluator.files import atomic_path, read_json, write_json

#: Each row of the exported network must have at least this cosine to torch's.
MIN_COSINE = 0.9999
#: How embedders may run their network.
RUNTIMES = ("auto", "onnx", "torch")
#: Where they may run it.
DEVICES = ("auto", "cpu", "cuda")
_OPSET = 17


def onnx_available() -> bool:
    """Whether both onnx (the exporter) and onnxruntime are installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def resolve_runtime(runtime: str, owner: str) -> str:
    """``onnx`` or ``torch``: ``auto`` is onnx when installed. Raises on an unknown name or an
    ONNX runtime asked for but not installed."""
    if runtime not in RUNTIMES:
        raise InputError(
            f"unknown runtime {runtime!r} for {owner}. Choose one of: {', '.join(RUNTIMES)}."
        )
    if runtime == "auto":
        return "onnx" if onnx_available() else "torch"
    if runtime == "onnx":
        require("onnx", "onnx", f"{owner} with --runtime onnx")
        require("onnxruntime", "onnxruntime", f"{owner} with --runtime onnx")
    return runtime


def resolve_device(device: str, runtime: str, owner: str) -> str:
    """``cpu`` or ``cuda``: ``auto`` is cuda when ``runtime`` can use a GPU here. Asking for
    cuda without one is an error that says so."""
    if device not in DEVICES:
        raise InputError(
            f"unknown device {device!r} for {owner}. Choose one of: {', '.join(DEVICES)}."
        )
    if device == "cpu":
        return device
    usable = _cuda_usable(runtime)
    if device == "cuda" and not usable:
        what = "CUDAExecutionProvider" if runtime == "onnx" else "a CUDA build of torch and a GPU"
        raise InputError(
            f"--device cuda was asked for {owner}, but {what} is not available here. "
            "Use --device cpu or auto."
        )
    return "cuda" if usable else "cpu"


def _cuda_usable(runtime: str) -> bool:
    if runtime == "onnx":
        import onnxruntime as ort

        return "CUDAExecutionProvider" in ort.get_available_providers()
    import torch

    return bool(torch.cuda.is_available())


def model_cache_dir() -> Path:
    """Where exported networks are kept: beside the embedding cache's parts."""
    from gmvaluator.embed.cache import default_cache_dir

    return default_cache_dir() / "onnx"


def export_key(weights: Path, settings: dict[str, Any]) -> str:
    """What names an exported file: the weights' bytes, the exporter's versions, ``settings``."""
    h = hashlib.sha256()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    meta = {"torch": dist_version("torch"), "onnx": dist_version("onnx"), "opset": _OPSET}
    h.update(json.dumps({**meta, **settings}, sort_keys=True).encode())
    return h.hexdigest()[:20]


def exported_model(
    name: str,
    weights: Path,
    settings: dict[str, Any],
    build: Callable[[], Any],
    example: np.ndarray,
    folder: Path | None = None,
) -> Path:
    """The ONNX file of the torch module ``build()`` (input ``image``, output ``features``, any
    batch size), exported on first call into ``folder`` (default ``model_cache_dir()``)."""
    folder = folder or model_cache_dir()
    key = export_key(weights, settings)
    path = folder / f"{name}-{key}.onnx"
    if path.is_file() and (folder / f"{name}-{key}.json").is_file():
        return path
    import torch

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot write the exported {name} network under {folder}: {exc}. Set "
            f"{env.CACHE.name} to a writable folder, or use --runtime torch."
        ) from exc
    module = build()
    # the exporter warns about its own internals (shape inference, deprecated options)
    with atomic_path(path) as tmp, torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (torch.from_numpy(example),), str(tmp), dynamo=False, opset_version=_OPSET,
            input_names=["image"], output_names=["features"],
            dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}},
        )  # fmt: skip
    info = {"name": name, "weights": str(weights), "key": key, **settings}
    info.update(torch=dist_version("torch"), onnx=dist_version("onnx"), opset=_OPSET)
    write_json(folder / f"{name}-{key}.json", info)
    return path


def check_equal(path: Path, reference: np.ndarray, batch: np.ndarray, device: str) -> float:
    """The smallest row cosine between the ONNX network at ``path`` and torch's ``reference``
    features of ``batch``; raises when it is below ``MIN_COSINE``. The result is recorded in
    the JSON beside the file."""
    (out,) = session(str(path), 1, device).run(["features"], {"image": batch})
    cos = _row_cosines(np.asarray(out, dtype=np.float64), reference.astype(np.float64))
    worst = float(cos.min())
    if not worst >= MIN_COSINE:
        raise InputError(
            f"the ONNX export {path} gives features that differ from torch's (cosine {worst:.6f} "
            f"< {MIN_COSINE}). Delete that file to export again, or use --runtime torch."
        )
    meta = path.with_suffix(".json")
    info = read_json(meta) if meta.is_file() else {}
    if info.get("min_cosine_to_torch") != worst:
        write_json(meta, {**info, "min_cosine_to_torch": worst})
    return worst


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return np.asarray((a * b).sum(axis=1) / np.maximum(na * nb, 1e-30))


@functools.lru_cache(maxsize=8)
def session(path: str, threads: int, device: str = "cpu") -> Any:
    """An ONNX Runtime session for the model file at ``path`` on ``threads`` threads (CPU), or
    on the GPU with ``device="cuda"``."""
    import onnxruntime as ort

    if not Path(path).is_file():
        raise MissingDependencyError(f"the ONNX model file {path!r} is missing.")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(path, opts, providers=providers)
