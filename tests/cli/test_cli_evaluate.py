"""``gmvaluator evaluate`` end to end in process, on builtin:digits at a small size."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gmvaluator.cli import app

runner = CliRunner()
SMALL = ["--train", "builtin:digits[:500]", "--generator", "gmm", "--seeds", "1", "--draws", "1"]


def invoke(*args):
    return runner.invoke(app, ["evaluate", *[str(a) for a in args]])


def test_c1_writes_json_with_intervals_and_refuses_to_overwrite(tmp_path):
    res = invoke("c1", tmp_path, *SMALL, "--per-class", "5", "--k", "10,30")
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "eval" / "c1.json").read_text())
    assert out["criterion"] == "c1" and out["setup"]["train"] == "builtin:digits[:500]"
    names = {"default", "paper", "random", "exact-nn", "paper T=0.1", "rerank-none"}
    assert names <= set(out["valuers"])
    assert out["valuers"]["default"]["k=10"]["mean"] > 0.8
    assert out["valuers"]["random"]["k=30"]["mean"] < 0.25
    again = invoke("c1", "--out", tmp_path, *SMALL)  # the older spelling of RUN
    assert again.exit_code == 2 and "already exists" in again.stderr


@pytest.mark.parametrize(
    ("criterion", "extra"),
    [
        ("c2", ["--per-class", "5", "--no-baselines"]),
        ("c3", ["--per-class", "20", "--n-noise", "10", "--n-photos", "10", "--no-baselines"]),
        ("membership", ["--per-class", "20", "--no-baselines"]),
        ("deletion", ["--per-class", "5", "--fraction", "0.2"]),
    ],
)
def test_other_criteria_write_their_json(tmp_path, criterion, extra):
    res = invoke(criterion, "--out", tmp_path, *SMALL, *extra)
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "eval" / f"{criterion}.json").read_text())
    assert out["criterion"] == criterion and out["valuers"]


def test_lds_and_c4(tmp_path):
    res = invoke(
        "lds",
        "--out",
        tmp_path,
        "--train",
        "builtin:digits[:400]",
        "--generator",
        "gmm",
        "--models",
        "4",
        "--per-class",
        "3",
        "--no-baselines",
    )
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "eval" / "lds.json").read_text())
    assert out["setup"]["n_models"] == 4 and out["setup"]["half_size"] == 200
    res = invoke(
        "c4",
        "--out",
        tmp_path,
        "--train",
        "builtin:digits[:300]",
        "--generator",
        "gmm",
        "--per-class",
        "2",
        "--no-baselines",
    )
    assert res.exit_code == 0, res.output
    assert "ms/sample" in res.stdout


def test_sensitivity_writes_every_variant(tmp_path):
    res = invoke("sensitivity", "--out", tmp_path, *SMALL, "--per-class", "5", "--ks", "1,10")
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "eval" / "sensitivity.json").read_text())
    assert out["criterion"] == "sensitivity" and out["setup"]["ks"] == [1, 10]
    assert {"exact:pixels", "pq8x8", "pq8x8+rerank", "random"} <= set(out["valuers"])
    assert "recall@k=10" in out["valuers"]["pq8x8"]
    res = invoke("sensitivity", "--out", tmp_path / "z", "--embedders", " , ")
    assert res.exit_code == 2 and "--embedders ' , ' must name" in res.stderr


def test_bad_input_exits_2_with_one_line(tmp_path):
    res = invoke("c1", "--out", tmp_path, "--ks", "ten")
    assert res.exit_code == 2 and "--k 'ten' must be comma-separated" in res.stderr
    res = invoke("c1", "--out", tmp_path / "x", "--train", "builtin:nope")
    assert res.exit_code == 2 and "unknown built-in source" in res.stderr
    res = invoke("c3", "--out", tmp_path / "y", "--generator", "vae")
    assert res.exit_code == 2 and "unknown generator family" in res.stderr
