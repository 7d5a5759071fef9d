"""The Ray engine on a local two-CPU cluster: the same values as the local engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'gmvaluator[ray]'")

from gmvaluator import Valuator  # noqa: E402
from gmvaluator import search as ix  # noqa: E402
from gmvaluator.cli import app  # noqa: E402
from gmvaluator.embed import shards  # noqa: E402
from gmvaluator.engines.ray import RayEngine  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def sources(tmp_path, digits_pixels):
    x = digits_pixels[0][:800]
    rng = np.random.default_rng(0)
    gen = x[::7] + rng.normal(scale=0.05, size=x[::7].shape).astype(np.float32)
    np.save(tmp_path / "train.npy", x)
    np.save(tmp_path / "gen.npy", gen)
    return tmp_path / "train.npy", tmp_path / "gen.npy"


def _driver_must_not_embed(*args, **kwargs):
    raise AssertionError("the driver embedded a shard that a Ray worker had written")


def test_ray_search_over_ivfpq_shards_recalls_as_well(cluster, digits_pixels, tmp_path):
    x, _ = digits_pixels
    g = x[::5] + 0.02
    v = Valuator(k=10, index="ivfpq").fit(x, store=tmp_path / "ix")
    local, remote = v.value(g), v.value(g, search=RayEngine(cluster, 2).search)
    _, exact = ix.exact_search(ix.prepare(x, "cosine"), ix.prepare(g, "cosine"), 10, "cosine")
    assert ix.recall_at_k(remote.indices, exact) >= ix.recall_at_k(local.indices, exact) - 0.01
    np.testing.assert_allclose(remote.values.sum(), len(g))


def test_cli_engine_ray_equals_the_local_engine(cluster, sources, tmp_path, monkeypatch):
    train, gen = sources
    (tmp_path / "s.toml").write_text("[value]\nshard_size = 400\nindex = 'exact'\nk = 5\n")
    common = ["value", "--train", train, "--generated", gen, "--config", tmp_path / "s.toml"]
    runner = CliRunner()
    with monkeypatch.context() as patch:
        # every shard is embedded by Ray Data workers; the driver only joins them
        patch.setattr(shards, "embed_shard", _driver_must_not_embed)
        args = [*common, "--out", tmp_path / "r", "--engine=ray"]
        res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "r/embeddings/train").glob("shard-*.npy"))) == 2
    res = runner.invoke(app, [str(a) for a in [*common, "--out", tmp_path / "l", "--quiet"]])
    assert res.exit_code == 0, res.output
    for name in ("values", "attributions"):
        a = pd.read_parquet(tmp_path / f"l/{name}.parquet")
        b = pd.read_parquet(tmp_path / f"r/{name}.parquet")
        pd.testing.assert_frame_equal(b, a, check_exact=False, rtol=0, atol=1e-6)


def test_cli_refuses_an_unknown_engine_or_a_stray_address(sources, tmp_path):
    train, gen = sources
    common = ["value", "--train", train, "--generated", gen, "--out", tmp_path / "x"]
    runner = CliRunner()
    res = runner.invoke(app, [str(a) for a in [*common, "--engine", "dask"]])
    assert res.exit_code == 2 and "--engine must be one of ('local', 'ray')" in res.output
    res = runner.invoke(app, [str(a) for a in [*common, "--address", "auto"]])
    assert res.exit_code == 2 and "add --engine ray or drop --address" in res.output
