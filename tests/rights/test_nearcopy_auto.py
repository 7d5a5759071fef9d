"""The default near-copy space: SSCD descriptors of the matched images, when the images are
large enough and SSCD is installed; the run's own space otherwise.

Real photographs (scikit-image's sample images) cut into 96-pixel tiles make the training set;
a zoomed and a cropped copy of training tiles are planted among tiles of photographs the
training set never saw. Raw pixels, the run's space here, match both copies to their originals
but do not see them as copies; SSCD does.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gmvaluator.rights import nearcopy

TILE = 96
TRAIN_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "camera",
                "coins", "moon", "brick", "grass", "gravel", "horse")  # fmt: skip
NEW_PHOTOS = ("hubble_deep_field", "retina", "clock")


def _zoom(tile: Image.Image) -> Image.Image:
    return tile.crop((8, 8, TILE, TILE)).resize((TILE, TILE), Image.BICUBIC)


@pytest.fixture(scope="module")
def sscd_available() -> None:
    from gmvaluator.embed import get_embedder
    from gmvaluator.errors import MissingDependencyError

    try:
        get_embedder("sscd-distilled")
    except MissingDependencyError as exc:
        pytest.skip(f"SSCD is not available: {exc}")


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory, value_run, sscd_available, photo_tiles):
    root = tmp_path_factory.mktemp("photos")
    (root / "train").mkdir()
    (root / "gen").mkdir()
    train = [t for name in TRAIN_PHOTOS for t in photo_tiles(name)]
    for i, t in enumerate(train):
        t.save(root / "train" / f"t{i:03d}.png")
    new = [t for name in NEW_PHOTOS for t in photo_tiles(name)[::3]]
    for i, t in enumerate(new):
        t.save(root / "gen" / f"new{i:02d}.png")
    _zoom(train[5]).save(root / "gen" / "zoom-t005.png")
    train[60].crop((6, 6, TILE - 6, TILE - 6)).save(root / "gen" / "crop-t060.png")
    out = root / "run"
    value_run(out, root / "train", root / "gen", "--k", "3")
    return out, root, train


def test_auto_judges_large_images_on_sscd_descriptors_of_the_matched_items(photo_run):
    out, _, train = photo_run
    info = json.loads((out / "run.json").read_text())["near_copy"]
    assert info["descriptors"] == "matched" and info["space"] == "sscd-distilled"
    assert "auto" in info["space_reason"] and "sscd-distilled descriptors" in info["rule"]
    # every sampled training item and its 3 run-space neighbours, plus the matches: far
    # fewer than a pass over the training set would describe, were it large
    assert 0 < info["sample"] <= len(train) and info["threshold"] > 0
    att = pd.read_parquet(out / "attributions.parquet")
    flagged = att.groupby("generated_id")["near_copy"].any()
    assert flagged["zoom-t005.png"] and flagged["crop-t060.png"]
    for copy, original in (("zoom-t005.png", "t005.png"), ("crop-t060.png", "t060.png")):
        hits = att[(att["generated_id"] == copy) & att["near_copy"]]
        assert hits["train_id"].tolist() == [original]
    new = flagged[flagged.index.str.startswith("new")]
    assert len(new) >= 10 and new.sum() <= 1
    assert json.loads((out / "config.json").read_text())["near_copy_embedder"] == "auto"


def test_the_run_space_alone_misses_the_copies(photo_run, value_run):
    """What ``auto`` adds: the same run in the run's own space flags neither copy, though it
    matches each to its original first."""
    _, root, _ = photo_run
    run_space = root / "run-space"
    value_run(run_space, root / "train", root / "gen", "--k", "3",
              "--near-copy-embedder", "run")  # fmt: skip
    att = pd.read_parquet(run_space / "attributions.parquet")
    flagged = att.groupby("generated_id")["near_copy"].any()
    assert not flagged["zoom-t005.png"] and not flagged["crop-t060.png"]
    first = att[att["rank"] == 1].set_index("generated_id")["train_id"]
    assert first["zoom-t005.png"] == "t005.png" and first["crop-t060.png"] == "t060.png"
    info = json.loads((run_space / "run.json").read_text())["near_copy"]
    assert info["descriptors"] == "run"


def test_appended_batches_and_the_service_judge_copies_like_the_run(photo_run, photo_tiles):
    from gmvaluator.run.append import append_run
    from gmvaluator.service.attributor import Attributor

    out, root, train = photo_run
    (root / "more").mkdir(exist_ok=True)
    _zoom(train[77]).save(root / "more" / "zoom-t077.png")
    photo_tiles("hubble_deep_field")[1].save(root / "more" / "new-x.png")
    batch = append_run(out, str(root / "more"), progress=False, ledger="none").batch
    assert batch.near_copy is not None
    flags = dict(zip(batch.generated_ids.tolist(), batch.near_copy.any(axis=1), strict=True))
    assert flags["zoom-t077.png"] and not flags["new-x.png"]

    buf = io.BytesIO()
    _zoom(train[12]).save(buf, format="PNG")
    reply = Attributor.from_run(out, ledger="none").attribute_image(buf.getvalue())
    assert reply["near_copy"]
    assert [m["train_id"] for m in reply["matches"] if m["near_copy"]] == ["t012.png"]


def test_auto_keeps_small_images_and_other_kinds_in_the_run_space():
    space = nearcopy.choose_space("auto", ("image", "image"), side=28)
    assert space.mode == "run" and "28 pixels" in space.reason
    space = nearcopy.choose_space("auto", ("text", "text"))
    assert space.mode == "run" and "not images" in space.reason
    assert nearcopy.choose_space("sscd", ("image", "image"), side=8).mode == "all"
    from gmvaluator.errors import InputError

    with pytest.raises(InputError, match="'embedder' parameter of near_copy must be one of"):
        nearcopy.choose_space("lpips", ("image",))


def test_row_descriptors_embed_each_row_once_and_reuse_the_cache(tmp_path, sscd_available):
    from gmvaluator.embed import get_embedder
    from gmvaluator.embed.cache import open_cache
    from gmvaluator.sources import load_source

    ds = load_source("builtin:digits[:20]")
    embedder = get_embedder("sscd-distilled")
    first = nearcopy.RowDescriptors(ds, embedder, open_cache(tmp_path, embedder))
    a = first(np.array([3, 1, 3, 7]))
    assert first.embedded == 3 and np.array_equal(a[0], a[2])
    first(np.array([1, 7]))
    assert first.embedded == 3
    again = nearcopy.RowDescriptors(ds, embedder, open_cache(tmp_path, embedder))
    np.testing.assert_array_equal(again(np.array([3, 1, 3, 7])), a)
    assert again.embedded == 0
    direct = embedder.embed_batch([ds.items[i] for i in (3, 1, 3, 7)])
    np.testing.assert_allclose(a, direct, rtol=1e-6)


def test_the_service_answers_with_the_runs_rerank(photo_run, value_run):
    """A run re-ranked by SSCD: the service finds and credits the same matches for a sample
    as the run did (the recall space alone, raw pixels, would not)."""
    from gmvaluator.service.attributor import Attributor

    _, root, _ = photo_run
    out = root / "sscd-rerank"
    value_run(out, root / "train", root / "gen", "--k", "3", "--rerank", "sscd-distilled")
    att = pd.read_parquet(out / "attributions.parquet")
    service = Attributor.from_run(out, ledger="none")
    assert service.rerank == "sscd-distilled"
    for name in ("zoom-t005.png", "new03.png"):
        reply = service.attribute_image((root / "gen" / name).read_bytes(), generated_id=name)
        rows = att[att["generated_id"] == name].sort_values("rank")
        assert [m["train_id"] for m in reply["matches"]] == rows["train_id"].tolist()
        np.testing.assert_allclose([m["distance"] for m in reply["matches"]],
                                   rows["distance"], rtol=1e-5, atol=1e-6)  # fmt: skip
        np.testing.assert_allclose([m["credit"] for m in reply["matches"]],
                                   rows["credit"], rtol=1e-5, atol=1e-6)  # fmt: skip
    with pytest.raises(Exception, match="compares the items themselves"):
        service.attribute_vector(np.zeros((1, 3 * 96 * 96), np.float32), content=b"x")


def test_the_report_names_the_space_of_the_flags(photo_run, cli):
    out, _, _ = photo_run
    res = cli("report", out)
    assert res.exit_code == 0, res.output
    html = next(out.glob("report*/index.html")).read_text()
    assert "in sscd-distilled copy-detection descriptors are flagged" in html
    assert "sscd-distilled descriptors, cosine" in html  # the rule, in the header
