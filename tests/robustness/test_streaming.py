"""Sources larger than memory: Parquet image bytes stream one row group at a time, and
embeddings and the index's vectors are memory-mapped files, not arrays held in RAM."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from gmvaluator.config import ValueConfig
from gmvaluator.run.pipeline import run_value
from gmvaluator.sources import content_hash, load_source


def _parquet(path, n=300, group=50):
    ds = load_source(f"builtin:digits[:{n}]")
    blobs = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(ds.items.array[i]).save(buf, format="PNG")  # type: ignore[attr-defined]
        blobs.append(buf.getvalue())
    table = pa.table({"image": blobs, "label": ds.labels})
    pq.write_table(table, path, row_group_size=group)
    return blobs


def test_parquet_images_are_read_one_row_group_at_a_time(tmp_path):
    blobs = _parquet(tmp_path / "t.parquet")
    ds = load_source(str(tmp_path / "t.parquet"))
    lazy = ds.items.blobs  # type: ignore[attr-defined]
    assert not isinstance(lazy, list)
    seen = []
    for i in range(len(ds)):
        assert ds.items.raw_bytes(i) == blobs[i]  # type: ignore[attr-defined]
        seen.append(lazy._group)
        assert len(lazy._cache) <= 50
    assert sorted(set(seen)) == list(range(6))
    assert content_hash(ds) == content_hash(load_source(str(tmp_path / "t.parquet")))
    sub = ds.take(np.array([7, 120, 299]))
    assert [sub.items.raw_bytes(i) for i in range(3)] == [blobs[7], blobs[120], blobs[299]]  # type: ignore[attr-defined]


def test_run_keeps_embeddings_memory_mapped(tmp_path):
    _parquet(tmp_path / "t.parquet")
    cfg = ValueConfig(embedder="pixels", k=4, index="ivfpq", shard_size=64)
    out = run_value(str(tmp_path / "t.parquet"), "builtin:digits[300:320]", tmp_path / "run", cfg,
                    progress=False)  # fmt: skip
    assert isinstance(out.train.vectors, np.memmap)
    assert isinstance(out.generated.vectors, np.memmap)
    from gmvaluator.core.valuator import Valuator

    reopened = Valuator.load(tmp_path / "run" / "index")
    assert isinstance(reopened.embeddings_, np.memmap)
    assert len(list((tmp_path / "run" / "embeddings" / "train").glob("shard-*.npy"))) == 5
