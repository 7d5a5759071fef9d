"""Property-based tests: no input crashes a reader or the value function with anything but
gmvaluator's own errors; credit is never negative and always sums to q_j."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from gmvaluator import GMValuatorError, Valuator, softmax_credit
from gmvaluator.skips import collect_skips
from gmvaluator.sources import load_source

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


WILD = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([np.nan, np.inf, -np.inf, 0.0]))


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (6, 5), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _mutations():
    png = _png()
    return st.one_of(
        st.binary(max_size=300),
        st.builds(lambda n: png[:n], st.integers(0, len(png))),
        st.builds(
            lambda i, b: png[:i] + bytes([b]) + png[i + 1 :],
            st.integers(0, len(png) - 1),
            st.integers(0, 255),
        ),
    )


def _read_everything(path, mode: str) -> None:
    with collect_skips(mode):
        ds = load_source(str(path))
        for i in range(len(ds)):
            _ = ds.items[i]  # type: ignore[index]


@FUZZ
@given(data=_mutations(), ext=st.sampled_from([".png", ".gif", ".jpg", ".webp", ".bmp"]),
       mode=st.sampled_from(["raise", "skip"]))  # fmt: skip
def test_image_folder_reader_raises_only_our_errors(tmp_path_factory, data, ext, mode):
    folder = tmp_path_factory.mktemp("img")
    (folder / f"x{ext}").write_bytes(data)
    with contextlib.suppress(GMValuatorError):
        _read_everything(folder, mode)


@FUZZ
@given(data=st.one_of(st.binary(max_size=400), st.text(max_size=200).map(str.encode)),
       ext=st.sampled_from([".txt", ".jsonl", ".npy", ".npz", ".parquet"]),
       mode=st.sampled_from(["raise", "skip"]))  # fmt: skip
def test_file_readers_raise_only_our_errors(tmp_path_factory, data, ext, mode):
    path = tmp_path_factory.mktemp("f") / f"x{ext}"
    path.write_bytes(data)
    with contextlib.suppress(GMValuatorError):
        _read_everything(path, mode)


@FUZZ
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64, np.uint8, np.int16]),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=5),
    ),
    mode=st.sampled_from(["raise", "skip"]),
)
def test_array_readers_raise_only_our_errors(tmp_path_factory, arr, mode):
    path = tmp_path_factory.mktemp("a") / "x.npy"
    np.save(path, arr)
    with contextlib.suppress(GMValuatorError):
        _read_everything(path, mode)


@FUZZ
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {"text": st.one_of(st.none(), st.text(max_size=20), st.integers())},
            optional={"id": st.one_of(st.text(max_size=3), st.integers()), "label": st.integers()},
        ),
        max_size=6,
    ),
    mode=st.sampled_from(["raise", "skip"]),
)
def test_jsonl_and_parquet_records_raise_only_our_errors(tmp_path_factory, rows, mode):
    folder = tmp_path_factory.mktemp("r")
    (folder / "x.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    for path in [folder / "x.jsonl"]:
        with contextlib.suppress(GMValuatorError):
            _read_everything(path, mode)
    texts = [
        r["text"] if isinstance(r["text"], str) or r["text"] is None else str(r["text"])
        for r in rows
    ]
    pq.write_table(pa.table({"text": pa.array(texts, pa.string())}), folder / "x.parquet")
    with contextlib.suppress(GMValuatorError):
        _read_everything(folder / "x.parquet", mode)


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 4)),
                 elements=WILD),
    g=hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 4)),
                 elements=WILD),
    k=st.integers(0, 14),
    metric=st.sampled_from(["cosine", "sqeuclidean"]),
    q=st.one_of(st.none(), st.floats(-1, 1e3), st.just(np.nan)),
)  # fmt: skip
def test_value_function_never_crashes_and_conserves_credit(x, g, k, metric, q):
    try:
        v = Valuator(k=k, index="exact", metric=metric).fit(x)
        quality = None if q is None else np.full(len(g), q)
        r = v.value(g, quality=quality)
    except GMValuatorError:
        return
    assert (r.credits >= 0).all() and np.isfinite(r.credits).all()
    expected = np.ones(len(g)) if q is None else np.full(len(g), q)
    # every sample's q_j is either handed out or reported as unattributed
    assert (r.share >= 0).all() and (r.share <= 1).all()
    handed = r.credits.sum(axis=1)
    np.testing.assert_allclose(handed + r.unattributed, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(r.values.sum(), handed.sum(), rtol=1e-9, atol=1e-9)
    assert np.isfinite(r.density).all()


@settings(max_examples=100, deadline=None)
@given(
    d=hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 6)),
                 elements=st.floats(0, 1e300, allow_nan=False, allow_infinity=False)),
    t=st.floats(1e-6, 1e6),
)  # fmt: skip
def test_softmax_credit_is_a_distribution_for_any_scale(d, t):
    c = softmax_credit(d, t)
    assert np.isfinite(c).all() and (c >= 0).all()
    np.testing.assert_allclose(c.sum(axis=1), 1.0, rtol=1e-9)


def test_fuzz_reader_oracle_a_valid_png_reads(tmp_path):
    """The fuzz targets above would be vacuous if nothing ever read: a valid file must."""
    (tmp_path / "ok.png").write_bytes(_png())
    ds = load_source(str(tmp_path))
    assert ds.items[0].size == (6, 5)  # type: ignore[index]
    with pytest.raises(GMValuatorError):
        _read_everything(tmp_path / "missing.txt", "raise")
