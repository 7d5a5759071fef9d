"""Per-contributor values, the contributor mapping file, licences and the opt-out policy."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gmvaluator.errors import InputError
from gmvaluator.rights.contributors import as_opt_out, contributors_frame, read_contributor_map

GENERATED = "builtin:digits[1500:1600]"


@pytest.fixture(scope="module")
def flag_run(tmp_path_factory, owned_digits, value_run):
    out = tmp_path_factory.mktemp("runs") / "flag"
    value_run(out, owned_digits, GENERATED)
    return out


@pytest.fixture(scope="module")
def exclude_run(tmp_path_factory, owned_digits, value_run):
    out = tmp_path_factory.mktemp("runs") / "exclude"
    value_run(out, owned_digits, GENERATED, "--opt-out", "exclude")
    return out


def test_contributor_totals_equal_the_sum_of_their_items(flag_run):
    values = pd.read_parquet(flag_run / "values.parquet")
    contrib = pd.read_parquet(flag_run / "contributors.parquet")
    assert list(contrib.columns) == ["contributor", "value", "share", "n_items", "n_matched"]
    assert sorted(contrib["contributor"]) == [f"c{i}" for i in range(10)]
    by_hand = values.groupby("contributor")["value"].sum()
    got = contrib.set_index("contributor")["value"]
    np.testing.assert_allclose(got[by_hand.index], by_hand, rtol=0, atol=1e-12)
    # each generated sample hands out its attributable share; the rest stays unattributed
    handed = pd.read_parquet(flag_run / "generated.parquet")["credited"].sum()
    assert contrib["value"].sum() == pytest.approx(handed) and 90 < handed <= 100
    assert contrib["share"].sum() == pytest.approx(1.0)
    assert (contrib["n_items"] == 150).all()
    matched = values.assign(m=values["n_matches"] > 0).groupby("contributor")["m"].sum()
    assert (contrib.set_index("contributor")["n_matched"][matched.index] == matched).all()
    assert contrib["value"].is_monotonic_decreasing


def test_licence_and_opt_out_flow_into_values_and_the_policy_is_recorded(flag_run):
    values = pd.read_parquet(flag_run / "values.parquet")
    rows = np.arange(len(values))
    assert (values["licence"].to_numpy() == np.where(rows % 2 == 0, "cc-by", "cc0")).all()
    assert (values["opt_out"].to_numpy() == (rows % 7 == 3)).all()
    # under "flag" opted-out items are matched as usual
    assert values.loc[values["opt_out"], "value"].sum() > 0
    config = json.loads((flag_run / "config.json").read_text())
    assert config["opt_out"] == "flag"
    rights = json.loads((flag_run / "run.json").read_text())["rights"]
    assert rights["opt_out_policy"] == "flag" and rights["n_opted_out"] == int(
        (rows % 7 == 3).sum()
    )
    assert rights["n_excluded_from_matching"] == 0


def test_opted_out_items_never_receive_credit_under_exclude(exclude_run, flag_run):
    values = pd.read_parquet(exclude_run / "values.parquet")
    att = pd.read_parquet(exclude_run / "attributions.parquet")
    out_ids = set(values.loc[values["opt_out"], "train_id"])
    assert out_ids and not (set(att["train_id"]) & out_ids)
    assert (values.loc[values["opt_out"], "value"] == 0).all()
    assert (values.loc[values["opt_out"], "n_matches"] == 0).all()
    handed = pd.read_parquet(exclude_run / "generated.parquet")["credited"].sum()
    assert values["value"].sum() == pytest.approx(handed)
    # the index holds only the kept rows; the run records the policy
    index_ids = np.load(exclude_run / "index" / "ids.npy")
    assert len(index_ids) == len(values) - len(out_ids) and not (set(index_ids) & out_ids)
    assert json.loads((exclude_run / "config.json").read_text())["opt_out"] == "exclude"
    run = json.loads((exclude_run / "run.json").read_text())
    assert run["rights"]["n_excluded_from_matching"] == len(out_ids)
    # credit that went to opted-out items under "flag" now goes elsewhere
    flagged = pd.read_parquet(flag_run / "attributions.parquet")
    assert set(flagged["train_id"]) & out_ids


def test_a_contributor_mapping_file_overrides_the_column(tmp_path, owned_digits, value_run):
    ids = np.load(owned_digits)["ids"]
    mapping = tmp_path / "owners.csv"
    owners = ["even" if i % 2 == 0 else "odd" for i in range(len(ids))]
    pd.DataFrame({"id": ids, "contributor": owners}).to_csv(mapping, index=False)
    out = tmp_path / "run"
    value_run(out, owned_digits, "builtin:digits[1500:1520]", "--contributors", mapping)
    contrib = pd.read_parquet(out / "contributors.parquet")
    assert sorted(contrib["contributor"]) == ["even", "odd"]
    assert contrib["value"].sum() == pytest.approx(20.0)
    values = pd.read_parquet(out / "values.parquet")
    assert set(values["contributor"]) == {"even", "odd"}


def test_contributor_mapping_errors_name_the_item_and_the_fix(tmp_path):
    ids = np.array(["a", "b", "c"])
    path = tmp_path / "m.csv"
    path.write_text("id,contributor\na,x\nb,y\n")
    with pytest.raises(InputError, match=r"no contributor for training item 'c' .*Add a row"):
        read_contributor_map(path, ids)
    path.write_text("id,owner\na,x\n")
    with pytest.raises(InputError, match=r"needs columns 'id' and 'contributor'"):
        read_contributor_map(path, ids)
    path.write_text("id,contributor\na,x\na,y\nb,y\nc,z\n")
    with pytest.raises(InputError, match=r"lists id 'a' more than once"):
        read_contributor_map(path, ids)
    with pytest.raises(InputError, match=r"does not exist"):
        read_contributor_map(tmp_path / "nope.csv", ids)


def test_opt_out_values_are_parsed_strictly():
    ids = np.array(["a", "b", "c"])
    assert as_opt_out(np.array(["yes", "no", "TRUE"]), ids, "col").tolist() == [True, False, True]
    assert as_opt_out(np.array([0, 1, 0]), ids, "col").tolist() == [False, True, False]
    with pytest.raises(InputError, match=r"'maybe' for item 'b'.*true/false"):
        as_opt_out(np.array(["no", "maybe", "yes"]), ids, "col")


def test_bad_opt_out_policy_is_refused(cli, owned_digits, tmp_path):
    res = cli("value", "--train", owned_digits, "--generated", GENERATED, "--out", tmp_path / "r",
              "--embedder", "pixels", "--opt-out", "drop", "--quiet")  # fmt: skip
    assert res.exit_code == 2
    assert "'opt_out' parameter of value must be one of ('flag', 'exclude')" in res.output


def test_contributors_frame_by_hand():
    df = contributors_frame(np.array([1.0, 2.0, 0.0, 3.0]), np.array([1, 1, 0, 2]),
                            np.array(["b", "a", "a", "b"]))  # fmt: skip
    assert df.to_dict("list") == {
        "contributor": ["b", "a"], "value": [4.0, 2.0], "share": [4 / 6, 2 / 6],
        "n_items": [2, 2], "n_matched": [2, 1],
    }  # fmt: skip
