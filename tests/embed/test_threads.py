"""Every usable core by default, one place that decides, and the same values on any count."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gmvaluator import resources
from gmvaluator.config import load_config
from gmvaluator.errors import InputError
from gmvaluator.run.pipeline import run_value


def test_thread_count_takes_the_flag_then_omp_then_the_usable_cores(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resources.thread_count(5) == 5
    assert resources.thread_count() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(resources.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(resources, "_cgroup_quota", lambda path: None)
    assert resources.thread_count() == 4
    monkeypatch.setattr(resources, "_cgroup_quota", lambda path: 1.5)  # a container's quota
    assert resources.thread_count() == 2
    with pytest.raises(InputError, match="'threads' parameter.*Got 0 instead"):
        resources.thread_count(0)


def test_cgroup_quota_is_read_from_cpu_max(tmp_path):
    f = tmp_path / "cpu.max"
    f.write_text("150000 100000\n")
    assert resources._cgroup_quota(f) == 1.5
    f.write_text("max 100000\n")
    assert resources._cgroup_quota(f) is None
    assert resources._cgroup_quota(tmp_path / "absent") is None


def test_use_threads_sets_faiss_and_restores_it():
    import faiss

    before = faiss.omp_get_max_threads()
    with resources.use_threads(2):
        assert faiss.omp_get_max_threads() == 2
    assert faiss.omp_get_max_threads() == before


def test_one_thread_and_all_cores_give_the_same_values(tmp_path):
    spec = ("builtin:digits[:900]", "builtin:digits[900:1300]")
    values = []
    for threads in (1, 2):
        cfg = load_config(embedder="pixels", threads=threads, k=5)
        out = run_value(*spec, tmp_path / f"t{threads}", cfg, progress=False)
        values.append(pd.read_parquet(out.run_dir / "values.parquet"))
    pd.testing.assert_frame_equal(values[0], values[1])
    assert values[0]["value"].to_numpy().sum() > 0


def test_threads_and_device_change_no_recorded_setting_so_a_run_resumes(tmp_path, cli):
    invoke = cli
    base = ["value", "--train", "builtin:digits[:300]", "--generated", "builtin:digits[300:400]"]
    base += ["--embedder", "pixels", "--out", tmp_path / "run", "--quiet"]
    first = invoke(*base, "--threads", "1", "--verbose")
    assert first.exit_code == 0, first.output
    assert "embed_model_s" in first.output and "embed_preprocess_s" in first.output
    settings = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "threads" not in settings and "device" not in settings and "runtime" in settings
    again = invoke(*base, "--threads", "2")
    assert again.exit_code == 0, again.output
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert np.isfinite(record["timings"]["embed_model_s"])
    bad = invoke(*base, "--runtime", "onnx", "--out", tmp_path / "other")
    assert bad.exit_code == 2 and "no runtime to choose" in bad.output
