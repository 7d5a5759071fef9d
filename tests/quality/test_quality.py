"""Quality backends on real photos: degraded copies must score worse than their originals."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from gmvaluator.errors import InputError, MissingDependencyError
from gmvaluator.quality import NORMS, get_quality, normalize, quality_scores, read_quality
from gmvaluator.sources import load_source

_NAMES = ["astronaut", "coffee", "chelsea", "camera", "rocket"]


@pytest.fixture(scope="module")
def photos() -> tuple[list[Image.Image], list[Image.Image], list[Image.Image]]:
    """Real photos at 192 px wide, Gaussian-blurred copies and copies with Gaussian noise."""
    import skimage.data

    rng = np.random.default_rng(0)
    sharp, blurred, noisy = [], [], []
    for name in _NAMES:
        im = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        im = im.resize((192, round(192 * im.height / im.width)), Image.Resampling.LANCZOS)
        sharp.append(im)
        blurred.append(im.filter(ImageFilter.GaussianBlur(2.5)))
        a = np.asarray(im, dtype=np.float64) + rng.normal(0, 25, (im.height, im.width, 3))
        noisy.append(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)))
    return sharp, blurred, noisy


@pytest.mark.parametrize("name", ["brisque", "piqe", "sharpness"])
def test_blurred_and_noisy_copies_score_worse(photos, name):
    pytest.importorskip({"brisque": "brisque", "piqe": "pypiqe", "sharpness": "skimage"}[name])
    sharp, blurred, noisy = photos
    scorer = get_quality(name)
    ids = [str(i) for i in range(len(sharp))]
    s, b, n = (scorer.score(x, ids) for x in (sharp, blurred, noisy))
    assert ((s >= 0) & (s <= 1)).all() and s.std() > 0
    assert (s > b).all(), (s, b)
    assert (s > n).all(), (s, n)


def test_brisque_adapter_works_where_the_package_fails(photos):
    pytest.importorskip("brisque")
    from gmvaluator.quality.images import _brisque_model

    rgb = np.asarray(photos[0][0])
    # the package's own score() fails on NumPy >= 2.4 ("only 0-dimensional arrays ...")
    with contextlib.suppress(TypeError):
        _brisque_model().score(rgb)
    assert 0 < get_quality("brisque").score([photos[0][0]], ["a"])[0] <= 1


def test_image_backend_refuses_text():
    with pytest.raises(InputError, match=r"generated sample 'g1' is a str"):
        get_quality("sharpness").score(["a sentence"], ["g1"])


def test_none_and_callable(photos):
    sharp = photos[0]
    assert (get_quality("none").score(sharp, list("abcde")) == 1).all()
    widths = get_quality(lambda items: [im.width for im in items])
    np.testing.assert_array_equal(widths.score(sharp[:2], ["a", "b"]), [192, 192])
    bad = get_quality(lambda items: [1.0])
    with pytest.raises(InputError, match=r"returned 1 scores for 2 items"):
        bad.score(sharp[:2], ["a", "b"])


def test_file_backend_and_legacy_csv_path(tmp_path):
    path = tmp_path / "q.csv"
    pd.DataFrame({"id": ["b", "a"], "quality": [0.5, 2.0]}).to_csv(path, index=False)
    for spec in (f"file:{path}", str(path), path):
        np.testing.assert_array_equal(get_quality(spec).score([0, 1], ["a", "b"]), [2.0, 0.5])
    np.testing.assert_array_equal(read_quality(path, np.array(["b"])), [0.5])
    with pytest.raises(InputError, match=r"quality file .*nope.csv does not exist"):
        get_quality(f"file:{tmp_path / 'nope.csv'}")
    with pytest.raises(InputError, match=r"no score for generated sample 'c'"):
        read_quality(path, np.array(["a", "c"]))


def test_unknown_backend_names_the_choices():
    with pytest.raises(InputError, match=r"unknown quality backend 'musiq'.*brisque.*sharpness"):
        get_quality("musiq")


def test_maniqa_without_weights_names_them_and_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv("GMVALUATOR_MANIQA_WEIGHTS", raising=False)
    with pytest.raises(MissingDependencyError, match=r"MANIQA weights.*--quality maniqa:PATH"):
        get_quality("maniqa")
    with pytest.raises(MissingDependencyError, match=r"missing.pt' does not exist"):
        get_quality(f"maniqa:{tmp_path / 'missing.pt'}")


def test_maniqa_with_local_weights(photos):
    import os

    weights = os.environ.get("GMVALUATOR_MANIQA_WEIGHTS")
    if not weights or not os.path.isfile(weights):
        pytest.skip("no local MANIQA weights (set GMVALUATOR_MANIQA_WEIGHTS=PATH)")
    pytest.importorskip("pyiqa")
    sharp, blurred, _ = photos
    scorer = get_quality("maniqa")
    assert (scorer.score(sharp, list("abcde")) > scorer.score(blurred, list("abcde"))).all()


def test_normalisations_on_known_scores():
    s = np.array([2.0, 4.0, 4.0, 10.0])
    np.testing.assert_array_equal(normalize(s, "raw"), s)
    np.testing.assert_allclose(normalize(s, "minmax"), [0, 0.25, 0.25, 1])
    np.testing.assert_allclose(normalize(s, "rank"), [0.25, 0.75, 0.75, 1])
    np.testing.assert_allclose(normalize(s, "divide-by-max"), [0.2, 0.4, 0.4, 1])
    np.testing.assert_array_equal(normalize(np.full(3, 7.0), "minmax"), np.ones(3))
    for method in NORMS:  # order is kept by every method
        out = normalize(s, method)
        assert (np.diff(out) >= 0).all() and (out >= 0).all()
    with pytest.raises(InputError, match=r"'method' parameter of normalize must be one of"):
        normalize(s, "zscore")
    with pytest.raises(InputError, match=r"generated sample 'b' is nan"):
        normalize(np.array([1.0, np.nan]), "raw", np.array(["a", "b"]))
    with pytest.raises(InputError, match=r"needs a positive best score"):
        normalize(np.zeros(2), "divide-by-max")


def test_quality_scores_over_a_dataset(tmp_path, photos):
    sharp, blurred, _ = photos
    folder = tmp_path / "gen"
    folder.mkdir()
    for i, (s, b) in enumerate(zip(sharp, blurred, strict=True)):
        s.save(folder / f"sharp{i}.png")
        b.save(folder / f"blur{i}.png")
    ds = load_source(str(folder))
    q = quality_scores("sharpness", ds, "minmax")
    by_id = dict(zip(ds.ids, q, strict=True))
    assert min(by_id[f"sharp{i}.png"] for i in range(5)) > max(
        by_id[f"blur{i}.png"] for i in range(5)
    )
    assert q.min() == 0 and q.max() == 1
    np.testing.assert_array_equal(quality_scores("none", ds, "rank"), np.ones(len(ds)))


def test_maniqa_reports_a_pyiqa_that_fails_to_import(photos, tmp_path, monkeypatch):
    """pyiqa imports torchvision (and timm), whose PyPI builds fail to import beside this torch:
    the scorer must name the package and the cause, not end in a bare traceback."""
    pkg = tmp_path / "libs" / "pyiqa"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "libs"))
    (tmp_path / "ckpt_koniq10k.pt").write_bytes(b"weights")
    scorer = get_quality(f"maniqa:{tmp_path / 'ckpt_koniq10k.pt'}")
    assert scorer.settings()["weights"] == "ckpt_koniq10k.pt"
    with pytest.raises(MissingDependencyError, match=r"maniqa quality score needs the package "
                       r"'pyiqa', which is installed but fails to import: Runtime"):  # fmt: skip
        scorer.score(photos[0][:1], ["a"])
