"""Fixtures of the service tests: a served run, PNGs of training digits, an app on loopback."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, owned_digits, value_run):
    """A run of the owned digits valued against 20 held-out digits, with no ledger."""
    out = tmp_path_factory.mktemp("service") / "run"
    value_run(out, owned_digits, "builtin:digits[1500:1520]", "--ledger", "none")
    return out


@pytest.fixture(scope="session")
def png_of(owned_digits):
    """``png_of(row)``: training digit ``row`` as PNG bytes, as a client would upload it."""
    images = np.load(owned_digits)["images"]

    def encode(row: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(images[row]).save(buf, format="PNG")
        return buf.getvalue()

    return encode


@pytest.fixture(scope="session")
def serve_app():
    """``with serve_app(app) as port``: the app on a free loopback port, in a thread."""
    pytest.importorskip("fastapi")
    import uvicorn

    @contextlib.contextmanager
    def serve(app):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
        srv = uvicorn.Server(config)
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        deadline = time.time() + 30
        while not srv.started:
            assert time.time() < deadline and thread.is_alive(), "the service did not start"
            time.sleep(0.05)
        try:
            yield port
        finally:
            srv.should_exit = True
            thread.join(timeout=10)

    return serve


class VectorEmbedder:
    """The embedder of a run over precomputed vectors: requests send the vectors themselves."""

    name, version, kind = "vectors", "1", "embedding"


@pytest.fixture(scope="session")
def vector_attributor():
    """(an Attributor over 200 seeded 16-d vectors with owners and licences, the vectors);
    T = 0.05, so credits are far from an even split."""
    from gmvaluator.core.valuator import Valuator
    from gmvaluator.rights.contributors import TrainingRights
    from gmvaluator.service.attributor import Attributor

    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    rows = np.arange(len(x))
    ids = np.array([f"v{i:03d}" for i in rows])
    rights = TrainingRights(
        ids=ids, contributors=np.array([f"owner{i % 5}" for i in rows]),
        licence=np.where(rows % 2 == 0, "cc0", "cc-by"), opt_out=None,
    )  # fmt: skip
    valuator = Valuator(k=4, index="exact", temperature=0.05).fit(x, ids=ids)
    attributor = Attributor(valuator, rights, VectorEmbedder(), threshold=1e-4, run_id="run-v")
    return attributor, x
