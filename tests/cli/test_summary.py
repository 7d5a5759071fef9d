"""What ran, said by ``value``, ``value --append``, run.json and the report alike: the embedder,
metric, index, recall, temperature and the near copies found."""

from __future__ import annotations

import json

import pytest

RAN = "ran: embedder pixels, metric cosine, index Flat (exact), k=5, recall@5 1.000 on"


@pytest.fixture(scope="module")
def run(tmp_path_factory, value_run):
    """300 real digits valued against 20 others and 5 exact copies of training digits."""
    out = tmp_path_factory.mktemp("summary") / "run"
    res = value_run(out, "builtin:digits[:300]", "builtin:digits[0:5]", "--temperature", "0.05")
    return out, res


def test_value_names_the_embedder_metric_index_temperature_and_near_copies(run) -> None:
    out, res = run
    lines = res.stdout.splitlines()
    assert lines[0] == "valued 300 training items against 5 generated samples"
    assert lines[1].startswith(RAN)
    assert "credit: calibrated, T = 0.05;" in res.stdout
    near = next(line for line in lines if line.startswith("near copies:"))
    assert near.startswith("near copies: 5 generated samples (") and "digits/0000" in near
    record = json.loads((out / "run.json").read_text())
    assert record["embedder"] == "pixels"


def test_append_prints_the_same_summary(run, cli) -> None:
    out, _first = run
    res = cli("value", "--append", out, "--generated", "builtin:digits[300:310]", "--quiet")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("appended 10 generated samples to ")
    assert lines[1].startswith(RAN) and lines[1].endswith("on 15 queries")
    assert lines[2].startswith("matched ") and lines[3].startswith("credit: calibrated, T = 0.05")
    # the near copies of the whole run, said as the first run says them
    assert lines[4].startswith("near copies: 5 generated samples (")


def test_the_report_names_the_embedder_metric_and_near_copies(run, cli) -> None:
    pytest.importorskip("jinja2")
    out, _ = run
    res = cli("report", out, "--overwrite")
    assert res.exit_code == 0, res.output
    page = (out / "report" / "index.html").read_text()
    assert "default for the source kind" not in page
    assert "pixels" in page and ">metric<" in page.replace(" ", "")
    assert "near copies" in page
