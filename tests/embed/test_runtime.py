"""EfficientNet-Lite0 under ONNX Runtime against the torch reference; runtimes, devices, the
exported file, and where the embedding time goes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gmvaluator.embed import onnx
from gmvaluator.embed.cache import open_cache
from gmvaluator.embed.efficientnet import EfficientNetLite0Embedder, onnx_model, torch_features
from gmvaluator.embed.registry import run_embedder
from gmvaluator.embed.shards import embed_shard, embed_sharded
from gmvaluator.embed.timing import STAGES, collect_times
from gmvaluator.errors import InputError
from gmvaluator.sources import load_source

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return load_source("builtin:digits[:24]")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_onnx_features_equal_torch_on_real_images(digits):
    fast = EfficientNetLite0Embedder(runtime="onnx", device="cpu", threads=1)
    ref = EfficientNetLite0Embedder(runtime="torch", device="cpu", threads=1)
    items = digits.items[0:24]
    a, b = fast.embed_batch(items), ref.embed_batch(items)
    assert a.shape == b.shape == (24, 1280) and a.dtype == np.float32
    assert cosines(a, b).min() >= 0.9999
    # the check made on first use is recorded beside the exported file
    info = json.loads(onnx_model("cpu").with_suffix(".json").read_text())
    assert info["min_cosine_to_torch"] >= onnx.MIN_COSINE and info["torch"] and info["onnx"]


def test_the_runtime_is_part_of_the_fingerprint_so_caches_never_mix(tmp_path):
    fast = EfficientNetLite0Embedder(runtime="onnx", device="cpu")
    ref = EfficientNetLite0Embedder(runtime="torch", device="cpu")
    assert (fast.settings()["runtime"], ref.settings()["runtime"]) == ("onnx", "torch")
    assert fast.read_ahead and not ref.read_ahead  # only a GIL-free forward is read ahead
    a, b = open_cache(tmp_path, fast), open_cache(tmp_path, ref)
    assert a is not None and b is not None and a.folder != b.folder
    # auto is onnx here, where both onnx and onnxruntime are installed
    assert EfficientNetLite0Embedder().settings() == fast.settings()


def test_an_export_that_differs_from_torch_is_refused(tmp_path):
    path = onnx_model("cpu")
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(2, 3, 224, 224)).astype(np.float32)
    ref = torch_features(batch, "cpu", 1)
    assert onnx.check_equal(path, ref, batch, "cpu") >= onnx.MIN_COSINE
    with pytest.raises(InputError, match="differ from torch's.*--runtime torch"):
        onnx.check_equal(path, ref[::-1].copy(), batch, "cpu")


def test_export_is_cached_by_weights_and_exporter(tmp_path):
    from gmvaluator.embed.efficientnet import _pooled, load_model, weights_path

    example = np.zeros((1, 3, 224, 224), np.float32)
    build = lambda: _pooled(load_model("cpu"))  # noqa: E731
    first = onnx.exported_model("net", weights_path(), {"v": 1}, build, example, tmp_path)
    stamp = first.stat().st_mtime_ns
    again = onnx.exported_model("net", weights_path(), {"v": 1}, build, example, tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp  # not exported again
    other = onnx.exported_model("net", weights_path(), {"v": 2}, build, example, tmp_path)
    assert other != first and other.is_file()


def test_runtimes_and_devices_are_checked():
    with pytest.raises(InputError, match="unknown runtime 'tf'.*auto, onnx, torch"):
        EfficientNetLite0Embedder(runtime="tf")
    with pytest.raises(InputError, match="unknown device 'tpu'"):
        EfficientNetLite0Embedder(device="tpu")
    assert EfficientNetLite0Embedder(device="cpu").device == "cpu"
    with pytest.raises(InputError, match="no runtime to choose.*efficientnet-lite0"):
        run_embedder("pixels", runtime="onnx")
    with pytest.raises(InputError, match="no device to choose"):
        run_embedder("pixels", device="cuda")
    # auto asks nothing of it, and every embedder runs on the CPU
    assert run_embedder("pixels").name == run_embedder("pixels", device="cpu").name == "pixels"


def test_cuda_without_a_gpu_is_a_clear_error_and_auto_falls_back_to_the_cpu():
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a GPU is usable here: test_gpu_features_equal_cpu covers it")
    with pytest.raises(InputError, match="--device cuda.*not available here.*--device cpu"):
        EfficientNetLite0Embedder(device="cuda", runtime="onnx")
    assert EfficientNetLite0Embedder(device="auto", runtime="onnx").device == "cpu"


def test_gpu_features_equal_cpu(digits):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("no CUDAExecutionProvider here (a GPU build of onnxruntime and a GPU)")
    gpu = EfficientNetLite0Embedder(device="cuda", runtime="onnx")
    cpu = EfficientNetLite0Embedder(device="cpu", runtime="onnx", threads=1)
    items = digits.items[0:8]
    assert cosines(gpu.embed_batch(items), cpu.embed_batch(items)).min() >= 0.9999


def test_stage_times_and_progress_per_batch(digits, tmp_path):
    emb = EfficientNetLite0Embedder(runtime="onnx", device="cpu", threads=1)
    ticks: list[int] = []
    with collect_times() as times:
        vecs, rows, _skipped = embed_shard(digits, emb, 0, 20, 8, "cosine", tick=ticks.append)
        embed_sharded(digits, emb, tmp_path / "e", {"n": 24}, batch_size=8, progress=False)
    assert ticks == [8, 8, 4]  # one tick a batch, not one a shard
    assert len(vecs) == 20 and list(rows) == list(range(20)) and set(times.seconds) == set(STAGES)
    record = times.record()
    assert record["embed_model_s"] > 0 and record["embed_preprocess_s"] > 0
    assert record["embed_write_s"] > 0
