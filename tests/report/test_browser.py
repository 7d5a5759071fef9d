"""Reports of real runs opened in headless Chromium: they load without errors, every picture
decodes, and the numbers on the page are those of the run's Parquet files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gmvaluator.cli import app
from gmvaluator.report.page import num

runner = CliRunner()
FORTUNES = "/usr/share/games/fortunes/computers"


def invoke(*args: object):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """Real digits with owners, valued against 20 of them, reported by ``value --report``."""
    from gmvaluator.sources import load_source

    tmp = tmp_path_factory.mktemp("digits")
    ds = load_source("builtin:digits")
    owners = np.array([f"owner-{i % 7}" for i in range(len(ds))])
    np.savez(
        tmp / "train.npz", images=ds.items.array, ids=ds.ids, labels=ds.labels, contributors=owners
    )
    run = tmp / "run"
    res = invoke(
        "value", "--train", tmp / "train.npz", "--generated", "builtin:digits[0:20]",
        "--embedder", "pixels", "--k", "5", "--out", run, "--quiet", "--report",
    )  # fmt: skip
    assert "report/index.html" in res.stdout
    return run


def test_digits_report_renders_with_the_numbers_of_the_run(
    browser, open_page, digits_run, tmp_path
):
    page = open_page(digits_run / "report" / "index.html")
    assert page["errors"] == [] and page["scripts"] == ["report-js"]
    assert page["broken"] == [] and page["n_images"] > 20 * 6
    att = pd.read_parquet(digits_run / "attributions.parquet")
    values = pd.read_parquet(digits_run / "values.parquet")
    assert [s["id"] for s in page["samples"]] == [f"digits/{i:04d}" for i in range(20)]
    for sample in page["samples"]:
        assert sample["has_img"]
        rows = att[att["generated_id"] == sample["id"]].sort_values("rank")
        shown = sample["contributors"]
        assert [c["id"] for c in shown] == rows["train_id"].tolist()
        np.testing.assert_allclose([c["credit"] for c in shown], rows["credit"], rtol=1e-12)
        np.testing.assert_allclose([c["distance"] for c in shown], rows["distance"], atol=1e-12)
        assert [c["credit_text"] for c in shown] == [num(x) for x in rows["credit"]]
        assert all(c["has_img"] for c in shown)
        if "near_copy" in rows:
            assert [c["near_copy"] for c in shown] == rows["near_copy"].tolist()
        # the generated sample is a copy of training item digits/j: its first contributor
        assert shown[0]["id"] == sample["id"]
    best = values.sort_values(["value", "rank"], ascending=[False, True]).head(20)
    assert [r["id"] for r in page["most"]] == best["train_id"].tolist()
    np.testing.assert_allclose([r["value"] for r in page["most"]], best["value"], rtol=1e-12)
    assert [r["text"] for r in page["most"]] == [num(v) for v in best["value"]]
    board = values.groupby("contributor")["value"].sum().sort_values(ascending=False)
    assert [r["id"] for r in page["leaderboard"]] == board.index.tolist()
    np.testing.assert_allclose([r["credit"] for r in page["leaderboard"]], board.to_numpy())
    assert page["zero"] == f"{int((values['value'] == 0).sum()):,}"
    html = (digits_run / "report" / "index.html").read_text()
    assert 'alt="class mix"' in html and 'alt="credit per class"' in html
    assert re.search(r"recall@5\s+1\.000", page["text"])
    assert browser.save_screenshot(str(tmp_path / "digits-report.png"))
    assert (tmp_path / "digits-report.png").stat().st_size > 10_000


def _fortunes(n: int) -> list[str]:
    raw = Path(FORTUNES).read_text(encoding="utf-8", errors="replace")
    quotes = [" ".join(q.split()) for q in raw.split("\n%\n")]
    return [q for q in quotes if 20 <= len(q) <= 160][:n]


def test_text_report_shows_escaped_snippets(open_page, tmp_path):
    pytest.importorskip("sentence_transformers")
    quotes = _fortunes(90)
    if len(quotes) < 90:
        pytest.skip(f"Debian fortunes are not installed ({FORTUNES})")
    (tmp_path / "train.txt").write_text("\n".join(quotes[:80]) + "\n")
    risky = '<script>alert("x")</script> & <b>bold</b> claims'
    generated = [*quotes[80:90], quotes[3], risky]
    (tmp_path / "generated.txt").write_text("\n".join(generated) + "\n")
    run = tmp_path / "run"
    invoke(
        "value", "--train", tmp_path / "train.txt", "--generated", tmp_path / "generated.txt",
        "--embedder", "minilm", "--k", "4", "--out", run, "--quiet",
    )  # fmt: skip
    invoke("report", run)
    page = open_page(run / "report" / "index.html")
    assert page["errors"] == [] and page["scripts"] == ["report-js"] and page["broken"] == []
    assert len(page["samples"]) == len(generated)
    by_id = {s["id"]: s for s in page["samples"]}
    copy = by_id["line-11"]
    assert copy["gen_text"] == quotes[3] and copy["contributors"][0]["id"] == "line-4"
    assert copy["contributors"][0]["text"] == quotes[3]
    assert by_id["line-12"]["gen_text"] == risky  # shown as text, never run as markup
    for s in page["samples"]:
        assert not s["has_img"] and all(c["text"] and not c["has_img"] for c in s["contributors"])
    # the only pictures are the plots
    assert page["n_images"] == len(
        re.findall(r'class="plot"', (run / "report/index.html").read_text())
    )


def test_report_of_a_million_items_stays_bounded_and_renders(open_page, synthetic_run, tmp_path):
    run = synthetic_run(tmp_path / "big", n=1_000_000, m=100_000, k=10)
    invoke("report", run)
    html = run / "report" / "index.html"
    assert html.stat().st_size < 25_000_000
    page = open_page(html)
    assert page["errors"] == [] and page["broken"] == []
    assert len(page["samples"]) == 40
    assert "Showing 40 of 100,000 generated samples" in page["text"]
    assert len(page["leaderboard"]) == 25 and "Top 25 of 5,000 contributors" in page["text"]
    values = pd.read_parquet(run / "values.parquet")
    best = values.nsmallest(20, "rank")
    np.testing.assert_allclose([r["value"] for r in page["most"]], best["value"], rtol=1e-12)
    assert page["zero"] == f"{int((values['value'] == 0).sum()):,}"


def test_hostile_ids_show_as_text_in_the_browser(open_page, hostile_run, hostile, tmp_path):
    """Markup in ids and names is shown as the text it is: no script, no extra picture."""
    run = hostile_run(tmp_path / "run")
    invoke("report", run)
    page = open_page(run / "report" / "index.html")
    assert page["errors"] == [] and page["scripts"] == ["report-js"] and page["broken"] == []
    assert [s["id"] for s in page["samples"]] == [f"{hostile}gen-{j}" for j in range(6)]
    assert all(c["id"].startswith(hostile + "row-") for c in page["samples"][0]["contributors"])
    assert all(r["id"].startswith(hostile + "c") for r in page["leaderboard"])
    assert f"{hostile}gen-0" in page["text"] and "<img src=x onerror=alert(2)>" in page["text"]
    # the plots are the only pictures
    html = (run / "report" / "index.html").read_text()
    assert page["n_images"] == html.count('class="plot"')
