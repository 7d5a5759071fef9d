"""The embedding cache shared by runs: nothing is embedded twice, new items only, resumable."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gmvaluator.embed.cache import EmbeddingCache, default_cache_dir, item_keys, open_cache
from gmvaluator.embed.pixels import PixelEmbedder
from gmvaluator.embed.shards import embed_sharded
from gmvaluator.sources import load_source


class CountingPixels(PixelEmbedder):
    """Pixels that count the items they embed, and can fail after a number of batches."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.embedded = 0
        self.batches = 0
        self.fail_after = fail_after

    def embed_batch(self, items):  # type: ignore[no-untyped-def]
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.batches += 1
        self.embedded += len(items)
        return super().embed_batch(items)


@pytest.fixture
def image_folder(tmp_path, digits):  # type: ignore[no-untyped-def]
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(60):
        Image.fromarray(digits[i]).save(folder / f"d{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    ds = load_source("builtin:digits")
    return np.asarray(ds.items.array)


def _embed(folder, run, cache_dir, embedder, shard_size=16):  # type: ignore[no-untyped-def]
    ds = load_source(str(folder))
    cache = open_cache(cache_dir, embedder)
    out = embed_sharded(ds, embedder, run, {"source": str(folder)}, shard_size=shard_size,
                        batch_size=8, progress=False, cache=cache)  # fmt: skip
    return ds, out, cache


def test_second_run_embeds_nothing_and_gives_the_same_vectors(image_folder, tmp_path):
    cache_dir = tmp_path / "cache"
    first = CountingPixels()
    _, a, cache = _embed(image_folder, tmp_path / "run1", cache_dir, first)
    assert first.embedded == 60 and cache.added == 60 and len(cache) == 60
    second = CountingPixels()
    _, b, cache2 = _embed(image_folder, tmp_path / "run2", cache_dir, second)  # new run folder
    assert second.embedded == 0 and cache2.hits == 60 and cache2.added == 0
    np.testing.assert_array_equal(np.asarray(a.vectors), np.asarray(b.vectors))
    np.testing.assert_array_equal(a.kept, b.kept)
    # the vectors are those of an uncached run
    plain = embed_sharded(load_source(str(image_folder)), PixelEmbedder(), tmp_path / "run3",
                          {"source": "x"}, shard_size=16, progress=False)  # fmt: skip
    np.testing.assert_array_equal(np.asarray(plain.vectors), np.asarray(b.vectors))


def test_ten_new_files_embed_ten(image_folder, tmp_path, digits):
    cache_dir = tmp_path / "cache"
    _embed(image_folder, tmp_path / "run1", cache_dir, CountingPixels())
    for i in range(100, 110):
        Image.fromarray(digits[i]).save(image_folder / f"new{i}.png")
    counter = CountingPixels()
    _, out, cache = _embed(image_folder, tmp_path / "run2", cache_dir, counter)
    assert counter.embedded == 10 and cache.hits == 60 and len(out.kept) == 70
    np.testing.assert_array_equal(out.kept, np.arange(70))


def test_a_killed_run_resumes_from_the_cache(image_folder, tmp_path):
    cache_dir = tmp_path / "cache"
    dying = CountingPixels(fail_after=5)  # 2 batches per 16-item shard: dies in shard 3
    with pytest.raises(KeyboardInterrupt):
        _embed(image_folder, tmp_path / "run1", cache_dir, dying)
    assert dying.embedded == 40
    counter = CountingPixels()
    _, out, cache = _embed(image_folder, tmp_path / "run2", cache_dir, counter)
    assert cache.hits == 32 and counter.embedded == 60 - 32 and len(out.kept) == 60


def test_other_settings_never_share_vectors(tmp_path):
    a = open_cache(tmp_path, PixelEmbedder(size=8))
    b = open_cache(tmp_path, PixelEmbedder(size=16))
    assert a is not None and b is not None and a.folder != b.folder
    keys = np.array([b"k" * 16], dtype="S16")
    a.put(keys, np.ones((1, 64), np.float32))
    assert b.get(keys)[0].tolist() == [False]
    assert a.get(keys)[0].tolist() == [True]
    assert open_cache(tmp_path, load_precomputed()) is None


def load_precomputed():  # type: ignore[no-untyped-def]
    from gmvaluator.embed import get_embedder

    return get_embedder("precomputed")


def test_keys_follow_content_not_names(tmp_path, digits):
    for name in ("a.png", "b.png"):
        Image.fromarray(digits[0]).save(tmp_path / name)
    Image.fromarray(digits[1]).save(tmp_path / "c.png")
    ds = load_source(str(tmp_path))
    keys = item_keys(ds, np.arange(3))
    assert keys[0] == keys[1] != keys[2]


def test_parts_are_memory_mapped_and_partial_parts_ignored(tmp_path):
    cache = EmbeddingCache(tmp_path, {"name": "x"})
    keys = np.array([bytes([i]) * 16 for i in range(3)], dtype="S16")
    cache.put(keys, np.arange(12, dtype=np.float32).reshape(3, 4))
    (cache.folder / "part-torn.npy").write_bytes(b"\x93NUMPY garbage")  # no keys file: ignored
    again = EmbeddingCache(tmp_path, {"name": "x"})
    assert isinstance(again._parts[0], np.memmap) and len(again) == 3
    found, vecs = again.get(keys[::-1])
    assert found.all() and vecs is not None and vecs[0].tolist() == [8, 9, 10, 11]


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GMVALUATOR_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("GMVALUATOR_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "gmvaluator" / "embeddings"


def test_cli_second_run_reads_everything_from_the_cache(image_folder, tmp_path):
    import json

    from typer.testing import CliRunner

    from gmvaluator.cli import app

    cache = tmp_path / "cache"
    args = ["value", "--train", str(image_folder), "--generated", str(image_folder),
            "--embedder", "pixels", "--k", "3", "--quiet", "--cache", str(cache)]  # fmt: skip
    runs = []
    for name in ("a", "b"):
        res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        runs.append(json.loads((tmp_path / name / "run.json").read_text())["embedding_cache"])
    assert runs[0]["train"]["added"] == 60 and runs[0]["generated"]["hits"] == 60
    assert runs[1]["train"] == {**runs[1]["train"], "hits": 60, "added": 0}
    assert (tmp_path / "a" / "values.parquet").read_bytes() == (
        tmp_path / "b" / "values.parquet"
    ).read_bytes()
    res = CliRunner().invoke(app, [*args[:-2], "--cache", "none", "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "c" / "run.json").read_text())["embedding_cache"] == {
        "train": None, "generated": None}  # fmt: skip


def test_a_run_killed_by_sigkill_resumes_from_the_cache_in_a_new_folder(image_folder, tmp_path):
    import json
    import signal
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "s.toml").write_text("[value]\nshard_size = 16\nbatch_size = 8\n")
    cache = tmp_path / "cache"
    args = ["value", "--train", str(image_folder), "--generated", str(image_folder),
            "--embedder", "pixels", "--k", "3", "--quiet", "--cache", str(cache),
            "--config", str(tmp_path / "s.toml")]  # fmt: skip
    kill_at = Path(__file__).parents[1] / "robustness" / "kill_at.py"  # SIGKILL after shard 3
    dead = subprocess.run([sys.executable, kill_at, "shard:3", *args, "--out", tmp_path / "a"],
                          capture_output=True, timeout=120)  # fmt: skip
    assert dead.returncode == -signal.SIGKILL
    res = subprocess.run([sys.executable, "-m", "gmvaluator.cli", *args, "--out", tmp_path / "b"],
                         capture_output=True, timeout=120, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
    cached = json.loads((tmp_path / "b" / "run.json").read_text())["embedding_cache"]
    # three 16-item shards were finished and cached before the kill; the rest is embedded now
    assert cached["train"]["hits"] == 48 and cached["train"]["added"] == 12
    assert cached["generated"] == {**cached["generated"], "hits": 60, "added": 0}
