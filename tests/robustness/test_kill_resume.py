"""SIGKILL a real run at several points: no output is ever torn, and the re-run resumes and
writes byte-identical results. Also: the same inputs give the same bytes with 1 and 2 threads.

The named points are patched into the run by ``kill_at.py``, which starts the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gmvaluator.sources import load_source

OUTPUTS = ("values.parquet", "attributions.parquet")
KILL_AT = Path(__file__).with_name("kill_at.py")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    train = root / "train"
    train.mkdir()
    ds = load_source("builtin:digits[:400]")
    for i in range(len(ds)):
        Image.fromarray(ds.items.array[i]).save(train / f"{i:04d}.png")  # type: ignore[attr-defined]
    gen = load_source("builtin:digits[1000:1040]")
    np.savez(root / "gen.npz", images=gen.items.array)  # type: ignore[attr-defined]
    (root / "settings.toml").write_text("[value]\nshard_size = 50\nk = 5\nindex = 'ivfpq'\n")
    return root


def run_cli(inputs, out, *, kill_at=None, threads=1, timeout=120, wait=True):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    start = [str(KILL_AT), kill_at] if kill_at else ["-m", "gmvaluator.cli"]
    cmd = [
        sys.executable, *start, "value", "--train", str(inputs / "train"),
        "--generated", str(inputs / "gen.npz"), "--out", str(out), "--embedder", "pixels",
        "--config", str(inputs / "settings.toml"), "--quiet",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if not wait:
        return proc
    stdout, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stdout.decode(), stderr.decode()


@pytest.fixture(scope="module")
def reference(inputs):
    out = inputs / "reference"
    code, _, err = run_cli(inputs, out)
    assert code == 0, err
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def assert_nothing_torn(run):
    """Every output present is complete: it parses, and no temporary file is in its place."""
    for path in run.rglob("*"):
        if path.suffix == ".parquet":
            pd.read_parquet(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".npy":
            np.load(path, allow_pickle=False)


@pytest.mark.parametrize(
    "kill_at",
    [
        "shard:3",  # after the third of eight training shards
        "replace:config.json",  # the first file of a run
        "replace:embeddings/train/shard-00005.json",  # a shard's vectors written, not its JSON
        "replace:embeddings/generated/shard-00000.json",
        "replace:index/index.faiss",
        "replace:index/index.json",
        "run-json",  # every result written, the run not yet recorded
    ],
)
def test_killed_run_leaves_no_torn_file_and_resumes(inputs, reference, kill_at):
    out = inputs / f"killed-{kill_at.replace(':', '-').replace('/', '-')}"
    code, _, _ = run_cli(inputs, out, kill_at=kill_at)
    assert code == -signal.SIGKILL
    assert_nothing_torn(out)
    shards = sorted((out / "embeddings" / "train").glob("shard-*.json"))
    stamps = {p.name: p.stat().st_mtime_ns for p in shards}
    code, _, err = run_cli(inputs, out)
    assert code == 0, err
    assert not list(out.rglob(".*.tmp")), "temporary files of the killed run were not removed"
    for name in OUTPUTS:
        assert (out / name).read_bytes() == reference[name], name
    # shards finished before the kill were reused, not embedded again
    for p in shards:
        assert p.stat().st_mtime_ns == stamps[p.name]
    if kill_at == "shard:3":
        assert len(shards) == 3


def test_kills_at_random_moments(inputs, reference):
    rng = np.random.default_rng(7)
    out = inputs / "random-kills"
    for delay in rng.uniform(1.0, 4.0, size=3):
        proc = run_cli(inputs, out, wait=False)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert_nothing_torn(out)
    code, _, err = run_cli(inputs, out)
    assert code == 0, err
    for name in OUTPUTS:
        assert (out / name).read_bytes() == reference[name]


def test_same_bytes_with_one_thread_and_two(inputs, reference):
    out = inputs / "two-threads"
    code, _, err = run_cli(inputs, out, threads=2)
    assert code == 0, err
    for name in OUTPUTS:
        assert (out / name).read_bytes() == reference[name], name
