"""The numbers a report shows, and its errors, without a browser."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gmvaluator.cli import app
from gmvaluator.errors import InputError
from gmvaluator.report import ReportConfig, gini, lorenz, read_run, render_report, write_report
from gmvaluator.report import data as d
from gmvaluator.report.page import bar_width, count, num, pct

runner = CliRunner()


def test_gini_of_equal_and_of_concentrated_credit():
    assert gini(np.ones(100)) == pytest.approx(0.0)
    assert gini(np.r_[np.zeros(99), 5.0]) == pytest.approx(0.99)
    assert gini(np.zeros(10)) == 0.0
    # the textbook example: incomes 1..5 have Gini 4/15
    assert gini(np.arange(1, 6)) == pytest.approx(4 / 15)


def test_lorenz_curve_runs_from_origin_to_one_and_is_bounded():
    rng = np.random.default_rng(0)
    x, y = lorenz(rng.pareto(1.0, 100_000), points=200)
    assert len(x) <= 201 and (x[0], y[0]) == (0.0, 0.0)
    assert x[-1] == pytest.approx(1.0) and y[-1] == pytest.approx(1.0)
    assert np.all(np.diff(y) >= 0) and np.all(y <= x + 1e-12)


def test_samples_are_picked_from_every_class_in_turn():
    labels = np.repeat([3, 1, 2], [5, 5, 5])
    chosen = d.pick_samples(15, 6, labels)
    assert sorted(labels[chosen].tolist()) == [1, 1, 2, 2, 3, 3]
    assert d.pick_samples(10, 3).tolist() == [0, 4, 9]
    assert d.pick_samples(4, 10).tolist() == [0, 1, 2, 3]


def test_group_tables_sum_credit_and_count_matched_items():
    values = pd.DataFrame(
        {
            "value": [0.5, 0.0, 1.5, 2.0],
            "n_matches": [1, 0, 2, 3],
            "contributor": ["a", "a", "b", "c"],
            "label": [1, 0, 1, 0],
        }
    )
    t = d.contributor_table(values)
    assert t["group"].tolist() == ["c", "b", "a"]
    assert t["credit"].tolist() == [2.0, 1.5, 0.5] and t["matched"].tolist() == [1, 1, 1]
    assert t["items"].tolist() == [1, 1, 2] and t["share"].sum() == pytest.approx(1.0)
    c = d.class_table(values)
    assert c["group"].tolist() == [0, 1] and c["credit"].tolist() == [2.0, 2.0]


def test_class_mix_rows_are_shares_of_each_generated_class(synthetic_run, tmp_path):
    run = read_run(synthetic_run(tmp_path / "run", n=2000, m=300, k=4))
    gen_labels = np.arange(300) % 3
    rows, cols, shares = d.class_mix(run, gen_labels)
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == list(range(10))
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    att = run.attributions
    first = np.repeat(gen_labels, 4) == 0
    train_class = run.values["label"].to_numpy()[att["train_row"].to_numpy()]
    expected = att["credit"][first & (train_class == 7)].sum() / att["credit"][first].sum()
    assert shares[0, 7] == pytest.approx(expected)


def test_a_folder_that_is_no_finished_run_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"is not a folder\. Give the --out folder"):
        read_run(tmp_path / "missing")
    (tmp_path / "values.parquet").write_bytes(b"")
    with pytest.raises(InputError, match=r"not a finished valuation run: .*attributions\.parquet"):
        write_report(tmp_path)
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "is not a finished valuation run" in res.output


def test_report_settings_are_checked():
    with pytest.raises(InputError, match=r"'samples' parameter of ReportConfig must be an int"):
        ReportConfig(samples=0)
    with pytest.raises(InputError, match=r"'near_copy' parameter .* Got -1\.0 instead"):
        ReportConfig(near_copy=-1.0)


def test_report_cli_flags_near_copies_never_overwrites_and_keeps_its_size_bound(
    synthetic_run, tmp_path
):
    run = synthetic_run(tmp_path / "run", n=3000, m=50, k=5)
    est = {"mean": 0.9, "ci95": [0.85, 0.95], "n": 3, "samples": [0.85, 0.9, 0.95]}
    low = {**est, "mean": 0.1, "ci95": [0.05, 0.15]}
    c1 = {"setup": {"k": 5}, "valuers": {"default": {"k=5": est}, "random": {"k=5": low}}}
    (run / "eval").mkdir()
    (run / "eval" / "c1.json").write_text(json.dumps(c1))
    res = runner.invoke(app, ["report", str(run), "--samples", "5", "--near-copy", "0.05"])
    assert res.exit_code == 0, res.output
    assert "report/index.html" in res.stdout
    html = (run / "report" / "index.html").read_text()
    att = pd.read_parquet(run / "attributions.parquet")
    samples = re.findall(r'<section class="sample" id="g-\d+" data-generated-id="([^"]+)"', html)
    shown = att[att["generated_id"].isin(samples)]
    assert html.count('class="contrib near-copy"') == int((shown["distance"] <= 0.05).sum()) > 0
    assert html.count('section class="sample"') == 5
    evaluation = html[html.index('<h2 id="evaluation">') :]
    assert '<td class="num">0.900 [0.850, 0.950]</td>' in evaluation
    assert 'alt="k=5"' in evaluation
    meta = json.loads((run / "report" / "report.json").read_text())
    assert meta["settings"]["near_copy"] == 0.05 and meta["bytes"] == len(html.encode())
    again = runner.invoke(app, ["report", str(run)])
    assert again.exit_code == 2 and "exists. Pass --overwrite" in again.output
    # a bound the page only meets by showing fewer samples
    bound = meta["bytes"] + 8_000
    small = write_report(run, ReportConfig(samples=50, max_bytes=bound), overwrite=True)
    assert small.n_bytes <= bound and 5 < small.samples_shown < 50
    assert "fewer samples are shown" in small.path.read_text()


def test_number_formats():
    assert num(0.123456) == "0.1235" and num(0) == "0" and num(2.5e-9) == "2.500e-09"
    assert num(2.5e-9, fixed=True) == "0.0000"
    assert count(1234567) == "1,234,567" and pct(0.1234) == "12.3 %"
    assert bar_width(0.25) == "25.0" and bar_width(3) == "100.0" and bar_width(np.nan) == "0.0"


def test_hostile_ids_names_and_evaluations_are_shown_as_text(hostile_run, tmp_path):
    """Ids, contributors, generated ids and evaluation names that are markup reach the page
    escaped: not one tag of them survives, and their text is all there."""
    run = hostile_run(tmp_path / "run")
    html, _ = render_report(read_run(run), ReportConfig(samples=6))
    # the page's own script is its only one
    assert html.count("<script") == 1 and '<script id="report-js">' in html
    assert "<img src=x" not in html and "<b>valuer" not in html
    escaped = "&lt;script&gt;alert(&#34;id&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
    assert f'data-generated-id="{escaped}gen-0"' in html
    assert f'data-train-id="{escaped}row-' in html and f'data-contributor="{escaped}c' in html
    assert "<h3>&lt;img src=x onerror=alert(2)&gt;</h3>" in html
    assert "<code>&lt;b&gt;valuer&lt;/b&gt;</code>" in html
    assert '<p class="note">note &lt;i&gt;x&lt;/i&gt;' in html


def test_a_run_with_appended_batches_shows_pictures_of_every_batch(tmp_path):
    run = tmp_path / "run"
    first = runner.invoke(
        app,
        ["value", "--train", "builtin:digits[0:300]", "--generated", "builtin:digits[0:4]",
         "--embedder", "pixels", "--k", "3", "--out", str(run), "--quiet"],
    )  # fmt: skip
    assert first.exit_code == 0, first.output
    more = ["value", "--append", str(run), "--generated", "builtin:digits[4:7]", "--report"]
    res = runner.invoke(app, [*more, "--quiet"])
    assert res.exit_code == 0 and "report/index.html" in res.stdout, res.output
    html = (run / "report" / "index.html").read_text()
    shown = re.findall(r'data-generated-id="([^"]+)"><div class="gen"><img', html)
    assert shown == [f"digits/{i:04d}" for i in range(7)]


def test_the_report_names_the_credit_rule_and_warns_of_samples_far_from_the_training_data(
    tmp_path,
):
    import numpy as np

    from gmvaluator.sources import load_source

    digits = np.asarray(load_source("builtin:digits[0:5]").items.array)
    noise = np.random.default_rng(0).integers(0, 256, (3, 8, 8), dtype=np.uint8)
    gen = tmp_path / "gen.npz"
    np.savez(gen, images=np.concatenate([digits, noise]))
    run = tmp_path / "run"
    res = runner.invoke(
        app,
        ["value", "--train", "builtin:digits[0:300]", "--generated", str(gen), "--embedder",
         "pixels", "--k", "3", "--out", str(run), "--quiet", "--report"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "credit: calibrated" in res.stdout and "far from all training data" in res.stdout
    html = (run / "report" / "index.html").read_text()
    assert "calibrated, T = " in html and "unattributed" in html
    assert html.count("far from all training data: hands out") == 3
    assert "Last by rank" in html and ">density<" in html
