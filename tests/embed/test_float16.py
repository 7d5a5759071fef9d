"""float16 embedding shards: half the bytes on disk, the same matches as float32."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gmvaluator.cli import app
from gmvaluator.config import ValueConfig
from gmvaluator.engines.local import embed_stage
from gmvaluator.errors import InputError


@pytest.fixture
def sources(tmp_path, fashion_test_pixels):
    # Fashion-MNIST pixels / 255 are not exact in float16, so storage really rounds them.
    x = fashion_test_pixels[:3000]
    rng = np.random.default_rng(0)
    gen = x[::10] + rng.normal(scale=0.05, size=x[::10].shape).astype(np.float32)
    np.save(tmp_path / "train.npy", x)
    np.save(tmp_path / "gen.npy", gen)
    return tmp_path / "train.npy", tmp_path / "gen.npy"


def test_float16_shards_are_half_the_size_and_read_as_the_rounded_vectors(sources, tmp_path):
    train, _ = sources
    sizes = {}
    for dtype in ("float32", "float16"):
        cfg = ValueConfig(shard_size=1000, embedding_dtype=dtype)
        emb = embed_stage(str(train), "train", cfg, tmp_path / dtype, progress=False)
        assert emb.vectors.dtype == np.dtype(dtype) and isinstance(emb.vectors, np.memmap)
        folder = tmp_path / dtype / "embeddings" / "train"
        files = sorted(folder.glob("*.npy"))  # three shards and all.npy
        assert len(files) == 4
        sizes[dtype] = sum(p.stat().st_size - 128 for p in files)  # less each .npy header
        expected = np.load(train).astype(dtype)
        np.testing.assert_array_equal(np.asarray(emb.vectors), expected)
    assert 2 * sizes["float16"] == sizes["float32"]


def test_float16_runs_give_the_same_top_k_as_float32(sources, tmp_path):
    train, gen = sources
    runner = CliRunner()
    for dtype in ("float32", "float16"):
        args = ["value", "--train", train, "--generated", gen, "--out", tmp_path / dtype]
        args += ["--index", "exact", "--embedding-dtype", dtype, "--quiet"]
        res = runner.invoke(app, [str(a) for a in args])
        assert res.exit_code == 0, res.output
    a = pd.read_parquet(tmp_path / "float32/attributions.parquet")
    b = pd.read_parquet(tmp_path / "float16/attributions.parquet")
    keys = ["generated_id", "train_id"]
    same = a[keys].merge(b[keys], how="inner")
    assert len(same) >= 0.995 * len(a)  # only near-ties within float16 rounding may swap
    va = pd.read_parquet(tmp_path / "float32/values.parquet")["value"].to_numpy()
    vb = pd.read_parquet(tmp_path / "float16/values.parquet")["value"].to_numpy()
    assert np.abs(va - vb).sum() <= 0.01 * va.sum()


def test_float16_refuses_values_beyond_its_range_and_unknown_dtypes(tmp_path):
    big = np.full((4, 3), 1e6, dtype=np.float32)
    np.save(tmp_path / "big.npy", big)
    cfg = ValueConfig(embedding_dtype="float16", metric="sqeuclidean")
    with pytest.raises(InputError, match="beyond float16's range"):
        embed_stage(str(tmp_path / "big.npy"), "train", cfg, tmp_path / "r", progress=False)
    cfg = ValueConfig(embedding_dtype="int8")
    with pytest.raises(
        InputError, match=r"embedding dtype must be one of \('float32', 'float16'\)"
    ):
        embed_stage(str(tmp_path / "big.npy"), "train", cfg, tmp_path / "s", progress=False)
