"""The command line end to end, in process (typer's CliRunner), on real built-in data."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gmvaluator.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    res = invoke(
        "value", "--train", "builtin:digits", "--generated", "builtin:digits[100:140]",
        "--out", out, "--embedder", "pixels", "--k", "5", "--index", "ivfpq", "--quiet",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return out, res


def test_value_writes_the_run_folder(digits_run):
    out, res = digits_run
    assert "valued 1797 training items against 40 generated samples" in res.stdout
    values = pd.read_parquet(out / "values.parquet")
    assert list(values.columns) == [
        "train_id", "value", "rank", "n_matches", "density", "rank_score", "label"
    ]  # fmt: skip
    assert len(values) == 1797 and values["value"].sum() == pytest.approx(40.0)
    assert sorted(values["rank"]) == list(range(1, 1798))
    att = pd.read_parquet(out / "attributions.parquet")
    assert {"generated_id", "rank", "train_id", "distance", "credit", "quality"} <= set(att)
    assert len(att) == 40 * 5
    # each generated sample is a copy of a training digit, which must be its first match
    first = att[att["rank"] == 1]
    assert (first["generated_id"].to_numpy() == first["train_id"].to_numpy()).all()
    np.testing.assert_allclose(att.groupby("generated_id")["credit"].sum(), 1.0)
    run = json.loads((out / "run.json").read_text())
    assert run["counts"]["n_matched"] == int((values["n_matches"] > 0).sum())
    assert 0.9 <= run["recall"]["recall_at_k"] <= 1.0 and run["index"]["kind"] == "ivfpq"
    assert run["inputs"]["train"]["n"] == 1797 and len(run["inputs"]["train"]["sha256"]) == 64
    assert {"embed_train_s", "index_s", "value_s"} <= set(run["timings"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["k"] == 5 and cfg["embedder"] == "pixels"
    index_meta = json.loads((out / "index" / "index.json").read_text())
    assert index_meta["index"]["factory"].startswith("IVF")


def test_rerun_reuses_finished_stages_and_gives_identical_files(digits_run):
    out, _ = digits_run
    before = (out / "values.parquet").read_bytes(), (out / "attributions.parquet").read_bytes()
    res = invoke(
        "value", "--train", "builtin:digits", "--generated", "builtin:digits[100:140]",
        "--out", out, "--embedder", "pixels", "--k", "5", "--index", "ivfpq", "--quiet",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    run = json.loads((out / "run.json").read_text())
    assert run["reused"] == {"embed_train": True, "embed_generated": True}
    assert run["timings"]["index_s"] == 0.0
    after = (out / "values.parquet").read_bytes(), (out / "attributions.parquet").read_bytes()
    assert before == after


def test_changed_settings_in_an_existing_run_are_refused(digits_run):
    out, _ = digits_run
    res = invoke(
        "value", "--train", "builtin:digits", "--generated", "builtin:digits[100:140]",
        "--out", out, "--embedder", "pixels", "--k", "7", "--index", "ivfpq",
    )  # fmt: skip
    assert res.exit_code == 2
    assert "different settings: k" in res.stderr and "Traceback" not in res.output


def test_top_prints_the_most_valuable_items(digits_run):
    out, _ = digits_run
    res = invoke("top", out, "-n", "3")
    assert res.exit_code == 0
    best = pd.read_parquet(out / "values.parquet").sort_values("rank").head(3)
    for tid in best["train_id"]:
        assert tid in res.stdout


def test_quality_csv_scales_credit(tmp_path):
    gen_ids = [f"digits/{i:04d}" for i in range(10, 16)]
    pd.DataFrame({"id": gen_ids, "quality": [0, 0.5, 1, 1, 1, 2]}).to_csv(tmp_path / "q.csv")
    res = invoke(
        "value", "--train", "builtin:digits", "--generated", "builtin:digits[10:16]",
        "--out", tmp_path / "run", "--embedder", "pixels", "--k", "3", "--quiet",
        "--quality", tmp_path / "q.csv",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    att = pd.read_parquet(tmp_path / "run" / "attributions.parquet")
    sums = att.groupby("generated_id", sort=False)["credit"].sum().to_numpy()
    np.testing.assert_allclose(sums, [0, 0.5, 1, 1, 1, 2])


def _write_embeddings(path, n, d, seed=0):
    np.save(path, np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32))
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "does not exist"),
        ("empty", "holds no text"),
        ("dims", "generated embeddings have 8 dimensions but the training embeddings have 16"),
        ("k", r"k=50 is larger than the training set \(20 items\)"),
        ("quality", "has no score for generated sample"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(tmp_path, case, message):
    train = _write_embeddings(tmp_path / "train.npy", 20, 16)
    gen = _write_embeddings(tmp_path / "gen.npy", 5, 16, seed=1)
    args = ["--k", "3"]
    if case == "missing":
        train = tmp_path / "nope"
    elif case == "empty":
        (tmp_path / "empty.txt").write_text("\n\n")
        train = gen = tmp_path / "empty.txt"
    elif case == "dims":
        gen = _write_embeddings(tmp_path / "gen8.npy", 5, 8)
    elif case == "k":
        args = ["--k", "50"]
    elif case == "quality":
        (tmp_path / "q.csv").write_text("id,quality\nrow-0,1.0\n")
        args += ["--quality", str(tmp_path / "q.csv")]
    res = invoke(
        "value", "--train", train, "--generated", gen, "--out", tmp_path / "run", "--quiet", *args
    )
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(message, lines[0]), lines[0]


def test_debug_flag_shows_the_traceback(tmp_path):
    res = invoke("--debug", "value", "--train", tmp_path / "nope", "--generated", tmp_path / "x",
                 "--out", tmp_path / "run")  # fmt: skip
    assert res.exit_code != 0 and res.exception is not None


def test_demo_on_digits_end_to_end(tmp_path):
    res = invoke(
        "demo", "--out", tmp_path / "demo", "--data", "digits", "--per-class", "4",
        "--epochs", "30", "--quiet",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert summary["n_generated"] == 40 and summary["n_train"] == 1797
    # samples of a class-conditional VAE find contributors of their own class far above chance
    assert summary["c1_identical_class"] > 0.5
    assert "C1 identical class" in res.stdout and "recall@10" in res.stdout
    values = pd.read_parquet(tmp_path / "demo" / "values.parquet")
    assert values["value"].sum() == pytest.approx(40.0)
