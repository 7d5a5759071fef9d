"""Near-copy flags: a lightly noised copy of a training digit is flagged, new digits are not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gmvaluator.core.valuator import Valuator
from gmvaluator.errors import InputError
from gmvaluator.rights import nearcopy


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory, owned_digits, value_run):
    """Generated set: 40 held-out real digits plus a training digit with light noise."""
    from gmvaluator.sources import load_source

    ds = load_source("builtin:digits[1500:1540]")
    held_out = np.asarray(ds.items.array)
    train = np.load(owned_digits)
    rng = np.random.default_rng(0)
    copy = train["images"][42].astype(np.int64) + rng.integers(-4, 5, size=(8, 8))
    images = np.concatenate([held_out, np.clip(copy, 0, 255)[None]]).astype(np.uint8)
    ids = [*ds.ids.tolist(), "copy-of-0042"]
    path = tmp_path_factory.mktemp("near") / "generated.npz"
    np.savez(path, images=images, ids=np.array(ids))
    out = tmp_path_factory.mktemp("near") / "run"
    value_run(out, owned_digits, path)
    return out


def test_a_planted_near_copy_is_flagged_and_ordinary_samples_are_not(planted_run):
    att = pd.read_parquet(planted_run / "attributions.parquet")
    copy = att[att["generated_id"] == "copy-of-0042"]
    assert copy.iloc[0]["train_id"] == "digits/0042" and bool(copy.iloc[0]["near_copy"])
    flagged = att.groupby("generated_id")["near_copy"].any()
    assert not flagged["digits/1500"]  # an ordinary new digit
    # held-out digits are new samples of the same distribution: few are that close
    assert flagged.drop("copy-of-0042").mean() <= 0.15
    run = json.loads((planted_run / "run.json").read_text())
    info = run["near_copy"]
    assert "copy-of-0042" in info["flagged_generated_ids"]
    assert info["quantile"] == 0.01 and info["threshold"] > 0 and "quantile" in info["rule"]
    # the default, auto, keeps 8-pixel digits in the run's space
    assert info["descriptors"] == "run" and "8 pixels" in info["space_reason"]
    assert info["n_generated_flagged"] == int(flagged.sum())
    assert copy.iloc[0]["distance"] <= info["threshold"] < att["distance"].median()


def test_the_threshold_is_the_stated_quantile_of_train_nn_distances(digits_pixels):
    x = digits_pixels[0][:400]
    v = Valuator(k=3, index="exact", metric="sqeuclidean").fit(x)
    info = nearcopy.calibrate(v, quantile=0.05)
    d = ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert info["threshold"] == pytest.approx(np.quantile(d.min(axis=1), 0.05), rel=1e-5)
    assert nearcopy.flag(np.array([[0.0, info["threshold"] * 2]]), info["threshold"]).tolist() == [
        [True, False]
    ]
    with pytest.raises(InputError, match=r"'quantile' parameter of near_copy must be a float"):
        nearcopy.calibrate(v, quantile=1.5)


@pytest.fixture(scope="module")
def sscd_run(tmp_path_factory, owned_digits, value_run):
    """A run whose near copies are judged on SSCD copy-detection descriptors (distilled model):
    120 training digits; generated: 6 held-out digits and a noised copy of training digit 42."""
    from gmvaluator.embed import get_embedder
    from gmvaluator.errors import MissingDependencyError
    from gmvaluator.sources import array_to_image, load_source

    train = np.load(owned_digits)
    try:
        get_embedder("sscd-distilled").embed_batch([array_to_image(train["images"][0])])
    except MissingDependencyError as exc:
        pytest.skip(f"SSCD is not available: {exc}")
    root = tmp_path_factory.mktemp("sscd")
    np.savez(root / "train.npz", **{key: train[key][:120] for key in train.files})
    held_out = np.asarray(load_source("builtin:digits[1500:1506]").items.array)
    rng = np.random.default_rng(1)
    copy = train["images"][42].astype(np.int64) + rng.integers(-4, 5, size=(8, 8))
    images = np.concatenate([held_out, np.clip(copy, 0, 255)[None]]).astype(np.uint8)
    ids = [f"new-{i}" for i in range(6)] + ["copy-of-0042"]
    np.savez(root / "gen.npz", images=images, ids=np.array(ids))
    out = root / "run"
    value_run(out, root / "train.npz", root / "gen.npz", "--near-copy-embedder", "sscd-distilled")
    return out, root


def test_near_copies_on_copy_detection_descriptors(sscd_run, owned_digits):
    out, root = sscd_run
    att = pd.read_parquet(out / "attributions.parquet")
    flagged = att.groupby("generated_id")["near_copy"].any()
    assert flagged["copy-of-0042"] and flagged.drop("copy-of-0042").sum() <= 1
    copy = att[(att["generated_id"] == "copy-of-0042") & att["near_copy"]]
    assert copy["train_id"].tolist()[:1] == ["digits/0042"]
    info = json.loads((out / "run.json").read_text())["near_copy"]
    assert info["space"] == "sscd-distilled" and "sscd-distilled descriptors" in info["rule"]
    assert json.loads((out / "config.json").read_text())["near_copy_embedder"] == "sscd-distilled"
    assert np.load(out / "nearcopy" / "train.npy").shape == (120, 512)
    # an appended batch and the service judge copies in the same space
    from gmvaluator.run.append import append_run
    from gmvaluator.service.attributor import Attributor

    train = np.load(owned_digits)
    np.savez(root / "more.npz", images=train["images"][7:8], ids=np.array(["exact-0007"]))
    batch = append_run(out, str(root / "more.npz"), progress=False).batch
    assert batch.near_copy is not None and bool(batch.near_copy[0, 0])
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(train["images"][9]).save(buf, format="PNG")
    reply = Attributor.from_run(out, ledger="none").attribute_image(buf.getvalue())
    assert reply["matches"][0]["train_id"] == "digits/0009" and reply["near_copy"]


def test_flags_use_run_space_distances_when_d_comes_from_another_rerank(tmp_path):
    """With --rerank none, d_ij are approximate PQ distances; flags must still compare exact
    distances in the space the threshold was calibrated in: exact copies are flagged."""
    import pandas as pd
    from typer.testing import CliRunner

    from gmvaluator.cli import app

    res = CliRunner().invoke(app, [
        "value", "--train", "builtin:digits", "--generated", "builtin:digits[:6]",
        "--out", str(tmp_path / "run"), "--embedder", "pixels", "--index", "ivfpq",
        "--rerank", "none", "--k", "3", "--quiet",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    att = pd.read_parquet(tmp_path / "run" / "attributions.parquet")
    first = att[att["rank"] == 1]
    assert (first["train_id"] == first["generated_id"]).all()
    assert (first["distance"] > 0).any()  # the PQ distance of a copy is not 0: d is approximate
    # the flags follow exact run-space distances against the recorded threshold
    import json

    import numpy as np

    from gmvaluator.core.valuator import Valuator
    from gmvaluator.rights import nearcopy

    valuator = Valuator.load(tmp_path / "run" / "index")
    gen = np.load(tmp_path / "run" / "embeddings" / "generated" / "all.npy")
    rows = att["train_row"].to_numpy().reshape(6, 3)
    exact = nearcopy.run_space_distances(valuator, gen, rows)
    np.testing.assert_allclose(exact[:, 0], 0.0, atol=1e-6)
    threshold = json.loads((tmp_path / "run" / "run.json").read_text())["near_copy"]["threshold"]
    np.testing.assert_array_equal(att["near_copy"].to_numpy(), (exact <= threshold).ravel())
