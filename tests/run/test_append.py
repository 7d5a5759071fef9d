"""Incremental valuation: appending batches equals valuing everything at once."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from gmvaluator.core.result import ValuationResult
from gmvaluator.errors import InputError
from gmvaluator.run.append import append_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory, owned_digits, value_run, cli):
    """One run over 90 generated digits, and one over the first 40 with two appended batches,
    both on an IVF-PQ index (so the append must reuse the saved index, not rebuild it) over
    600 owned training digits (a small index trains in a second)."""
    root = tmp_path_factory.mktemp("incremental")
    with np.load(owned_digits) as npz:
        train = root / "train.npz"
        np.savez(train, **{key: npz[key][:600] for key in npz.files})
    whole, parts = root / "whole", root / "parts"
    value_run(whole, train, "builtin:digits[1500:1590]", "--index", "ivfpq")
    value_run(parts, train, "builtin:digits[1500:1540]", "--index", "ivfpq")
    assert json.loads((parts / "index" / "index.json").read_text())["index"]["kind"] == "ivfpq"
    index_before = (parts / "index" / "index.faiss").stat().st_mtime_ns
    train_before = sorted(p.name for p in (parts / "embeddings").iterdir())
    res = cli("value", "--append", parts, "--generated", "builtin:digits[1540:1570]", "--quiet")
    assert res.exit_code == 0, res.output
    assert "appended 30 generated samples" in res.stdout and "90" not in res.stdout
    append_run(parts, "builtin:digits[1570:1590]", progress=False)
    assert (parts / "index" / "index.faiss").stat().st_mtime_ns == index_before
    return whole, parts, train_before


def test_appending_batches_equals_a_run_from_scratch(runs):
    whole, parts, _ = runs
    a, b = ValuationResult.load(whole), ValuationResult.load(parts)
    assert (a.generated_ids == b.generated_ids).all() and (a.train_ids == b.train_ids).all()
    np.testing.assert_allclose(b.values, a.values, rtol=0, atol=1e-9)
    assert (a.n_matches == b.n_matches).all() and (a.indices == b.indices).all()
    np.testing.assert_allclose(b.credits, a.credits, rtol=0, atol=1e-9)
    np.testing.assert_allclose(b.distances, a.distances, rtol=0, atol=1e-9)
    assert (a.near_copy == b.near_copy).all()
    # the calibrated rule's share and density: constants from the training set, neighbours merged
    np.testing.assert_allclose(b.share, a.share, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(b.neighbours.rows, a.neighbours.rows)
    np.testing.assert_allclose(b.density, a.density, rtol=0, atol=1e-9)
    assert (a.share < 1).any() or (a.share == 1).all()
    va, vb = (pd.read_parquet(r / "values.parquet") for r in (whole, parts))
    assert list(va.columns) == list(vb.columns)
    assert (va["rank"] == vb["rank"]).all()
    ca, cb = (pd.read_parquet(r / "contributors.parquet") for r in (whole, parts))
    assert (ca["contributor"] == cb["contributor"]).all()
    np.testing.assert_allclose(cb["value"], ca["value"], rtol=0, atol=1e-9)


def test_append_records_batches_and_reuses_the_training_embeddings(runs):
    _, parts, train_before = runs
    run = json.loads((parts / "run.json").read_text())
    assert [b["n"] for b in run["appended"]] == [30, 20]
    assert run["counts"]["n_generated"] == 90
    assert run["run_id"] == json.loads((parts / "run.json").read_text())["run_id"]
    emb = sorted(p.name for p in (parts / "embeddings").iterdir())
    assert set(train_before) < set(emb)  # only new batches were embedded
    # the ledger holds every credit once: 90 generated samples x k = 5
    with sqlite3.connect(parts / "ledger.sqlite") as conn:
        n, m = conn.execute("SELECT COUNT(*), COUNT(DISTINCT generated_id) FROM credits").fetchone()
    assert (n, m) == (450, 90)


def test_duplicate_generated_ids_across_batches_are_refused(runs, cli):
    _, parts, _ = runs
    with pytest.raises(InputError, match=r"generated sample 'digits/1560' .* is already in run"):
        append_run(parts, "builtin:digits[1560:1600]", progress=False)
    res = cli("value", "--append", parts, "--generated", "builtin:digits[1500:1501]", "--quiet")
    assert res.exit_code == 2 and "already in run" in res.output
    assert json.loads((parts / "run.json").read_text())["counts"]["n_generated"] == 90


def test_append_to_a_folder_that_is_not_a_run(tmp_path, cli):
    res = cli("value", "--append", tmp_path, "--generated", "builtin:digits[:5]")
    assert res.exit_code == 2 and "is not a finished valuation run" in res.output
    res = cli("value", "--generated", "builtin:digits[:5]")
    assert res.exit_code == 2 and "needs --train and --out" in res.output
