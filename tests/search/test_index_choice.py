"""``auto`` weighs building an index against the searches it saves."""

from __future__ import annotations

import json

import pytest

from gmvaluator import Valuator
from gmvaluator.search import params


def test_without_the_query_count_auto_keeps_the_size_rule():
    assert params.auto_kind(50_000, 512, None, False)[0] == "exact"
    assert params.auto_kind(params.AUTO_EXACT_MAX + 1, 512, None, False)[0] == "ivfpq"


def test_few_queries_do_not_pay_for_a_build_and_many_do():
    n, d = 400_000, 512
    few, why = params.auto_kind(n, d, 1_000, False)
    assert few == "exact" and "1000 queries" in why and "predicted exact" in why
    assert params.auto_kind(n, d, 200_000, False)[0] == "ivfpq"
    # n alone no longer decides: at one size the query count flips the choice
    assert params.auto_kind(n, d, 1_000, False)[0] != params.auto_kind(n, d, 200_000, False)[0]


def test_an_index_that_will_be_reused_is_built_from_the_floor_on():
    assert params.auto_kind(params.AUTO_IVFPQ_MIN, 512, 10, True)[0] == "ivfpq"
    assert params.auto_kind(params.AUTO_IVFPQ_MIN - 1, 512, 10**7, True)[0] == "exact"


@pytest.mark.parametrize("kind", ["exact", "ivfpq"])
def test_predicted_time_grows_with_queries_and_size(kind):
    base = params.predicted_seconds(kind, 100_000, 512, 1_000)
    assert params.predicted_seconds(kind, 100_000, 512, 10_000) > base
    assert params.predicted_seconds(kind, 400_000, 512, 1_000) > base


def test_fit_records_why_auto_chose_from_the_query_count(digits_pixels, monkeypatch):
    x, _ = digits_pixels
    monkeypatch.setattr(params, "AUTO_IVFPQ_MIN", 1000)
    monkeypatch.setattr(params, "IVFPQ_BUILD_S_PER_N", 0.0)  # a free build: any query pays
    monkeypatch.setattr(params, "IVFPQ_QUERY_S_PER_D", 0.0)
    monkeypatch.setattr(params, "RECALL_QUERIES", 0)
    v = Valuator(k=5, recall_sample=200).fit(x, n_queries=500)
    assert v.index_params_.kind == "ivfpq"
    assert v.index_params_.reason.startswith(f"auto: n={len(x)}, 500 queries, d=64")
    monkeypatch.setattr(params, "IVFPQ_BUILD_S_PER_N", 1.0)  # a build that never pays
    assert Valuator(k=5).fit(x, n_queries=500).index_params_.kind == "exact"


def test_expected_queries_plan_the_index_for_later_runs(cli, tmp_path, monkeypatch):
    """``--expected-queries`` counts the queries later ``--append`` runs and ``serve`` will
    make: with a build that 40 queries cannot pay for, 10^6 expected queries make it pay."""
    monkeypatch.setattr(params, "AUTO_IVFPQ_MIN", 1000)
    monkeypatch.setattr(params, "IVFPQ_BUILD_S_PER_N", 1e-4)
    monkeypatch.setattr(params, "IVFPQ_QUERY_S_PER_D", 0.0)
    monkeypatch.setattr(params, "RECALL_QUERIES", 0)

    def reason(out, *extra):
        res = cli("value", "--train", "builtin:digits", "--generated", "builtin:digits[:40]",
                  "--out", out, "--embedder", "pixels", "--k", "5", "--quiet", *extra)  # fmt: skip
        assert res.exit_code == 0, res.output
        return json.loads((out / "index" / "index.json").read_text())["index"]

    alone = reason(tmp_path / "alone")
    assert alone["kind"] == "exact" and "40 queries" in alone["reason"]
    planned = reason(tmp_path / "planned", "--expected-queries", "1000000")
    assert planned["kind"] == "ivfpq" and "1000000 queries" in planned["reason"]
    bad = cli("value", "--train", "builtin:digits", "--generated", "builtin:digits[:40]",
              "--out", tmp_path / "bad", "--embedder", "pixels",
              "--expected-queries", "0")  # fmt: skip
    assert bad.exit_code == 2 and "'expected_queries'" in bad.output and "Got 0" in bad.output
