"""The attributor in process, without HTTP: lookups are the run's own attributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gmvaluator.core.credit import CreditRule
from gmvaluator.errors import InputError
from gmvaluator.rights.ledger import open_ledger
from gmvaluator.service.attributor import Attributor, KindError


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory, owned_digits, value_run):
    """Owned digits valued against copies of six of them, credits in RUN/ledger.sqlite."""
    out = tmp_path_factory.mktemp("copies") / "run"
    value_run(out, owned_digits, "builtin:digits[40:46]")
    return out


def test_a_lookup_of_a_training_copy_is_the_runs_own_attribution(copy_run, png_of, tmp_path):
    """The service's matches, credits, flags and ledger rows for a copy of training digit 42
    are the ones the run wrote for the same generated sample."""
    attributor = Attributor.from_run(copy_run, ledger=str(tmp_path / "lookups.sqlite"))
    out = attributor.attribute_image(png_of(42), generated_id="digits/0042", record=True)
    attributor.close()
    att = pd.read_parquet(copy_run / "attributions.parquet")
    want = att[att["generated_id"] == "digits/0042"].sort_values("rank")
    got = pd.DataFrame(out["matches"])
    assert got["train_id"].tolist() == want["train_id"].tolist()
    assert got["train_id"].iloc[0] == "digits/0042" and out["recorded"] == len(want) == 5
    np.testing.assert_allclose(got["credit"], want["credit"], atol=1e-6)
    np.testing.assert_allclose(got["distance"], want["distance"], atol=1e-6)
    assert got["near_copy"].tolist() == want["near_copy"].tolist()
    # the ledger rows are the run's rows, but for when they were written and the content hash
    # (the run hashes the pixels, the service the uploaded PNG)
    with open_ledger(copy_run) as run_ledger, open_ledger(tmp_path / "lookups.sqlite") as mine:
        ours, theirs = (
            led.explain("digits/0042").drop(columns=["recorded_at", "generated_sha256"])
            for led in (mine, run_ledger)
        )
    pd.testing.assert_frame_equal(ours, theirs, check_exact=False, atol=1e-6)


def test_credits_follow_the_valuators_credit_rule(vector_attributor):
    attributor, x = vector_attributor
    out = attributor.attribute_embedding(x[17].tolist(), generated_id="g", quality=0.5)
    dist, rows = attributor.valuator.kneighbors(x[17:18])
    assert [m["train_id"] for m in out["matches"]] == [f"v{r:03d}" for r in rows[0]]
    assert out["matches"][0]["train_id"] == "v017" and out["matches"][0]["near_copy"]
    want = CreditRule(0.05).credits(dist, np.array([0.5]))[0]
    np.testing.assert_allclose([m["credit"] for m in out["matches"]], want, rtol=1e-12)
    assert want[0] > 0.5 * 0.5  # T = 0.05 is no even split
    batch = attributor.valuator.value(x[17:18], quality=[0.5])
    np.testing.assert_allclose([m["credit"] for m in out["matches"]], batch.credits[0])
    assert out["matches"][0]["contributor"] == "owner2" and out["matches"][0]["licence"] == "cc-by"


def test_a_lookup_checks_its_input_and_refuses_to_record_without_a_ledger(vector_attributor):
    attributor, x = vector_attributor
    with pytest.raises(InputError, match="records no credits"):
        attributor.attribute_embedding(x[0].tolist(), record=True)
    with pytest.raises(InputError, match=r"quality is -1\.0; it must be a finite number from 0"):
        attributor.attribute_embedding(x[0].tolist(), quality=-1.0)
    with pytest.raises(InputError, match="non-finite values"):
        attributor.attribute_embedding([np.nan] * 16)
    with pytest.raises(KindError, match="values embedding data"):
        attributor.attribute_text("a cat")
    # the same content gets the same id, from its hash
    a, b = (attributor.attribute_embedding(x[1].tolist()) for _ in range(2))
    assert a["generated_id"] == b["generated_id"] and a["generated_id"].startswith("sha256:")


def test_a_folder_that_is_no_finished_run_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"finished valuation run: config\.json, run\.json, "):
        Attributor.from_run(tmp_path)
    with pytest.raises(InputError, match="is not a folder"):
        Attributor.from_run(tmp_path / "missing")


def test_the_service_never_returns_excluded_items(tmp_path, owned_digits, value_run, png_of):
    """Under --opt-out exclude an opted-out training image, uploaded as it is, is not matched."""

    value_run(tmp_path / "r", owned_digits, "builtin:digits[1500:1502]", "--opt-out", "exclude")
    attributor = Attributor.from_run(tmp_path / "r", ledger="none")
    opted_out = np.flatnonzero(np.load(owned_digits)["opt_out"])
    for row in opted_out[:20]:
        out = attributor.attribute_image(png_of(int(row)))
        ids = [m["train_id"] for m in out["matches"]]
        assert f"digits/{row:04d}" not in ids
        assert all(int(i.split("/")[1]) % 7 != 3 for i in ids)
    kept = attributor.attribute_image(png_of(4))
    assert kept["matches"][0]["train_id"] == "digits/0004"


class _TextEmbedder:
    """Bag-of-words counts over a fixed vocabulary: a small, deterministic text embedder."""

    name, version, kind = "bow", "1", "text"

    def __init__(self, vocab: list[str]) -> None:
        self.vocab = {w: i for i, w in enumerate(vocab)}

    def embed_batch(self, texts):
        out = np.zeros((len(texts), len(self.vocab)), dtype=np.float32)
        for r, t in enumerate(texts):
            for w in t.lower().split():
                if w in self.vocab:
                    out[r, self.vocab[w]] += 1
        return out + 1e-3  # never the zero vector


def test_text_samples_are_attributed_to_their_authors(tmp_path):
    """Real text (Debian fortunes): quoting a training text credits its author first; the
    text endpoint refuses images and the image endpoint refuses text with clear errors."""
    from gmvaluator.core.valuator import Valuator
    from gmvaluator.rights.contributors import TrainingRights

    fortunes = Path("/usr/share/games/fortunes/fortunes")
    if not fortunes.is_file():
        pytest.skip("Debian fortunes are not installed (apt-get install fortunes)")
    quotes = [q.strip() for q in fortunes.read_text(errors="replace").split("\n%\n") if q.strip()]
    quotes = quotes[:120]
    vocab = sorted({w for q in quotes for w in q.lower().split()})
    embedder = _TextEmbedder(vocab)
    x = embedder.embed_batch(quotes)
    ids = [f"q{i}" for i in range(len(quotes))]
    rights = TrainingRights(
        ids=np.array(ids), contributors=np.array([f"author{i % 4}" for i in range(len(ids))]),
        licence=None, opt_out=None,
    )  # fmt: skip
    valuator = Valuator(k=3, index="exact").fit(x, ids=ids)
    attributor = Attributor(valuator, rights, embedder, threshold=1e-6)
    out = attributor.attribute_text(quotes[5], generated_id="same")
    assert out["matches"][0]["train_id"] == "q5" and out["matches"][0]["contributor"] == "author1"
    assert out["near_copy"] and out["matches"][0]["near_copy"]
    # per-contributor credit is the sum over that contributor's matches
    want: dict[str, float] = {}
    for m in out["matches"]:
        want[m["contributor"]] = want.get(m["contributor"], 0.0) + m["credit"]
    got = {c["contributor"]: c["credit"] for c in out["contributors"]}
    assert got == pytest.approx(want) and sum(got.values()) == pytest.approx(1.0)
    with pytest.raises(KindError, match="values text data"):
        attributor.attribute_image(b"\x89PNG")
    with pytest.raises(InputError, match="text is empty"):
        attributor.attribute_text("   ")
