"""Both engines implement the engine protocol, and the pipeline uses nothing else."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest

from gmvaluator import Valuator
from gmvaluator.config import ValueConfig
from gmvaluator.engines import ENGINES, Engine, LocalEngine, open_engine
from gmvaluator.engines.ray.engine import RayEngine
from gmvaluator.errors import InputError
from gmvaluator.run.pipeline import run_value


class RecordingEngine:
    """The local engine behind the protocol, recording each call."""

    name = "recording"

    def __init__(self) -> None:
        self.inner = LocalEngine()
        self.calls: list[str] = []

    def embed(self, spec, role, cfg, run_dir, progress=True, cache=None):
        self.calls.append(f"embed {role}")
        return self.inner.embed(spec, role, cfg, run_dir, progress, cache)

    def search(self, valuator, prepared_queries, k):
        self.calls.append(f"search {len(prepared_queries)}")
        return self.inner.search(valuator, prepared_queries, k)


def test_both_engines_implement_the_protocol():
    for engine in (LocalEngine(), RayEngine(ray=None, n_shards=2), RecordingEngine()):
        assert isinstance(engine, Engine)
    assert {LocalEngine.name, RayEngine.name} == set(ENGINES)


def test_the_local_search_is_the_valuators_own(digits_pixels):
    x, _ = digits_pixels
    v = Valuator(k=5, index="ivfpq").fit(x[:1000])
    g = x[1000:1100] + 0.01
    own = v.value(g)
    hooked = v.value(g, search=LocalEngine().search)
    assert (own.indices == hooked.indices).all()
    np.testing.assert_array_equal(own.distances, hooked.distances)
    np.testing.assert_array_equal(own.values, hooked.values)


def test_the_pipeline_runs_with_an_explicit_engine_and_only_through_its_protocol(tmp_path):
    cfg = ValueConfig(embedder="pixels", k=5, index="exact")
    args = ("builtin:digits[:300]", "builtin:digits[300:330]")
    default = run_value(*args, tmp_path / "default", cfg, progress=False)
    explicit = run_value(*args, tmp_path / "local", cfg, progress=False, engine=LocalEngine())
    spy = RecordingEngine()
    run_value(*args, tmp_path / "spy", cfg, progress=False, engine=spy)
    assert spy.calls == ["embed train", "embed generated", "search 30"]
    np.testing.assert_array_equal(explicit.result.values, default.result.values)
    for name in ("values.parquet", "attributions.parquet"):
        want = pd.read_parquet(tmp_path / "default" / name)
        for run in ("local", "spy"):
            pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / run / name), want)


def test_open_engine_gives_the_local_engine_and_refuses_unknown_names():
    with open_engine("local") as engine:
        assert isinstance(engine, LocalEngine)
    with pytest.raises(InputError, match=r"--engine must be one of \('local', 'ray'\)"):
        open_engine("dask")
    with pytest.raises(InputError, match="add --engine ray or drop --address"):
        open_engine("local", "auto")
    assert isinstance(open_engine("ray"), contextlib.AbstractContextManager)  # not entered
