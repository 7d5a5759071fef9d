"""Shared fixtures: real data, small and seeded; the CLI in process; runs over owned digits
(contributors, licences, opt-outs); a private PostgreSQL server on loopback."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# CLI runs cache embeddings by default; keep the tests' cache out of the user's own.
if "GMVALUATOR_CACHE" not in os.environ:
    import tempfile

    os.environ["GMVALUATOR_CACHE"] = tempfile.mkdtemp(prefix="gmvaluator-test-cache-")

import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gmvaluator.cli import app


@pytest.fixture(scope="session")
def digits_pixels() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real 8x8 digits as 64-d float32 vectors, with their labels."""
    from gmvaluator.sources import load_source

    ds = load_source("builtin:digits")
    x = np.asarray(ds.items.array, dtype=np.float32).reshape(len(ds), -1) / 255.0
    return x, np.asarray(ds.labels)


@pytest.fixture(scope="session")
def fashion_test_pixels() -> np.ndarray:
    """The first 6,000 real Fashion-MNIST test images as 784-d float32 pixel vectors."""
    from gmvaluator.sources import load_source
    from gmvaluator.sources.builtin import fashion_mnist_available

    if not fashion_mnist_available():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    ds = load_source("builtin:fashion-mnist:test[:6000]")
    return np.asarray(ds.items.array, dtype=np.float32).reshape(len(ds), -1) / 255.0


runner = CliRunner()
N_TRAIN = 1500


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="session")
def cli():
    """Run the command line in process: ``cli("value", "--train", ...)``."""
    return invoke


@pytest.fixture(scope="session")
def owned_digits(tmp_path_factory) -> Path:
    """The first 1,500 real digits as an .npz with contributor, licence and opt_out columns.

    Ten contributors own the digits round-robin; every 7th digit is opted out.
    """
    from gmvaluator.sources import load_source

    ds = load_source(f"builtin:digits[:{N_TRAIN}]")
    rows = np.arange(N_TRAIN)
    path = tmp_path_factory.mktemp("sources") / "owned.npz"
    np.savez(
        path,
        images=np.asarray(ds.items.array),
        ids=np.asarray(ds.ids),
        labels=np.asarray(ds.labels),
        contributors=np.array([f"c{i % 10}" for i in rows]),
        licence=np.where(rows % 2 == 0, "cc-by", "cc0"),
        opt_out=rows % 7 == 3,
    )
    return path


def _value_run(out: Path, train: object, generated: str, *extra: object):
    res = invoke(
        "value", "--train", train, "--generated", generated, "--out", out,
        "--embedder", "pixels", "--k", "5", "--index", "exact", "--quiet", *extra,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="session")
def value_run():
    """``value_run(out, train, generated, *flags)``: a run that must succeed (pixels, k=5,
    exact index unless ``flags`` say otherwise)."""
    return _value_run


# -- PostgreSQL -----------------------------------------------------------------------------------
def _pg_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _install_postgresql() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
        check=False,
        env=env,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL cluster on 127.0.0.1 and a free port; yields its base URL.

    Installs Debian's ``postgresql`` when it is missing and we are root; PostgreSQL refuses to
    run as root, so the cluster then belongs to the ``postgres`` user.
    """
    pytest.importorskip("psycopg")
    if _pg_bindir() is None:
        _install_postgresql()
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql) and cannot be")
    prefix: list[str] = []
    data = Path(tempfile.mkdtemp(prefix="gmvaluator-pg-"))
    if os.geteuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(data, "postgres", "postgres")
    port = _free_port()

    def pg(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    pg(str(bindir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "-A", "trust",
       "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off"
    pg(str(bindir / "pg_ctl"), "-D", str(data / "db"), "-o", opts, "-l", str(data / "log"),
       "-w", "-t", "60", "start")  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture()
def postgres_url(postgres_server) -> str:
    """A fresh database on the private server, for one test."""
    import psycopg

    name = f"t{time.monotonic_ns()}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"


@pytest.fixture(scope="session")
def photo_tiles():
    """``photo_tiles(name)``: a scikit-image sample photo, scaled so its short side is four
    96-pixel tiles, cut into those tiles (real photo-like images for credit and copy tests)."""
    pytest.importorskip("skimage")
    from PIL import Image

    def tiles(name: str, tile: int = 96) -> list[Image.Image]:
        import skimage.data

        im = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        scale = 4 * tile / min(im.size)
        im = im.resize((round(im.size[0] * scale), round(im.size[1] * scale)), Image.BICUBIC)
        return [
            im.crop((x, y, x + tile, y + tile))
            for y in range(0, im.size[1] - tile + 1, tile)
            for x in range(0, im.size[0] - tile + 1, tile)
        ]

    return tiles
