"""``gmvaluator value`` on the inputs people already have: the same images as a folder, as
WebDataset shards, as a CSV of paths and as a Hugging Face save_to_disk folder give the same
values."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gmvaluator.sources import load_source

N_TRAIN, N_GEN = 60, 20


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Real digits as PNG: 60 training images in a folder, 20 others as generated samples."""
    root = tmp_path_factory.mktemp("same-images")
    ds = load_source(f"builtin:digits[:{N_TRAIN + N_GEN}]")
    pngs = {}
    for i, arr in enumerate(np.asarray(ds.items.array)):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        pngs[i] = buf.getvalue()
    for i in range(N_TRAIN + N_GEN):
        folder = root / ("train" if i < N_TRAIN else "generated")
        folder.mkdir(exist_ok=True)
        (folder / f"{i:04d}.png").write_bytes(pngs[i])
    return root, pngs


def values_by_image(out) -> pd.Series:
    """Each training image's value, keyed by the image number whatever id the source gave."""
    v = pd.read_parquet(out / "values.parquet")
    key = v["train_id"].str.extract(r"(\d{4})")[0].astype(int)
    return pd.Series(v["value"].to_numpy(), index=key).sort_index()


def test_shards_a_csv_of_paths_and_a_saved_dataset_value_like_the_folder(
    images, tmp_path, value_run
) -> None:
    root, pngs = images
    value_run(tmp_path / "folder", root / "train", root / "generated")
    expected = values_by_image(tmp_path / "folder")
    assert len(expected) == N_TRAIN and 0 < expected.sum() <= N_GEN + 1e-9

    for shard, rows in (("s-0.tar", range(0, 30)), ("s-1.tar", range(30, N_TRAIN))):
        with tarfile.open(tmp_path / shard, "w") as tar:
            for i in rows:
                info = tarfile.TarInfo(f"{i:04d}.png")
                info.size = len(pngs[i])
                tar.addfile(info, io.BytesIO(pngs[i]))
    csv = root / "train.csv"
    pd.DataFrame({"path": [f"train/{i:04d}.png" for i in range(N_TRAIN)]}).to_csv(csv)
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict(
        {"image": [Image.open(io.BytesIO(pngs[i])) for i in range(N_TRAIN)],
         "id": [f"{i:04d}" for i in range(N_TRAIN)]},
        features=datasets.Features({"image": datasets.Image(), "id": datasets.Value("string")}),
    ).save_to_disk(str(tmp_path / "saved"))  # fmt: skip

    for name, spec in (
        ("shards", tmp_path / "s-{0..1}.tar"),
        ("csv", csv),
        ("saved", tmp_path / "saved"),
    ):
        res = value_run(tmp_path / "runs" / name, spec, root / "generated")
        assert f"valued {N_TRAIN} training items" in res.stdout, name
        got = values_by_image(tmp_path / "runs" / name)
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-6, atol=1e-9)
        assert got.index.tolist() == expected.index.tolist()


def test_a_txt_of_image_paths_is_valued_as_images_and_the_kind_flag_settles_it(
    images, tmp_path, cli, value_run
) -> None:
    root, _ = images
    listing = root / "generated.txt"
    listing.write_text("".join(f"generated/{i:04d}.png\n" for i in range(N_TRAIN, N_TRAIN + 5)))
    res = value_run(tmp_path / "listed", root / "train", listing)
    assert f"valued {N_TRAIN} training items against 5 generated samples" in res.stdout
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a seven drawn twice\n")
    res = cli(
        "value", "--train", root / "train", "--generated", corpus, "--generated-kind", "image",
        "--out", tmp_path / "forced", "--embedder", "pixels", "--quiet",
    )  # fmt: skip
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "line 1 names 'a seven drawn twice', which is not a file" in res.output
    res = cli(
        "value", "--train", root / "train", "--train-kind", "text", "--generated", listing,
        "--out", tmp_path / "wrong", "--embedder", "pixels", "--quiet",
    )  # fmt: skip
    assert res.exit_code == 2 and "holds image items, not text items" in res.output
