"""The fixed valuations whose outputs are stored under ``tests/run/golden/expected``.

Each case is a list of command lines; ``inputs(folder)`` writes the inputs they read (real
digits, real fortunes). ``python tests/run/golden/golden_cases.py OUT`` writes the expected outputs
again, which only a deliberate change of results should do.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
EXPECTED = HERE / "expected"
COMPARED = ("values.parquet", "attributions.parquet")
PIXELS = ("--embedder", "pixels", "--cache", "none", "--quiet")


def inputs(folder: Path) -> dict[str, Path]:
    """Training and generated sources of the cases, written into ``folder``."""
    from gmvaluator.sources import load_source

    ds = load_source("builtin:digits[:600]")
    rows = np.arange(len(ds))
    owned = folder / "owned.npz"
    np.savez(
        owned,
        images=np.asarray(ds.items.array),
        ids=np.asarray(ds.ids),
        labels=np.asarray(ds.labels),
        contributors=np.array([f"c{i % 7}" for i in rows]),
    )
    digits = load_source("builtin:digits")
    pixels = np.asarray(digits.items.array, dtype=np.float32).reshape(len(digits), -1) / 16.0
    np.save(folder / "train_emb.npy", pixels[:1500])
    np.save(folder / "gen_emb.npy", pixels[1500:1600] + 0.01)
    return {
        "owned": owned,
        "train_emb": folder / "train_emb.npy",
        "gen_emb": folder / "gen_emb.npy",
        "train_txt": HERE / "train.txt",
        "gen_txt": HERE / "generated.txt",
    }


def cases(i: dict[str, Path], out: Path) -> dict[str, list[list[object]]]:
    """Case name -> the command lines that make its run folder ``out / name``."""
    gen = "builtin:digits[1500:1560]"
    return {
        "images_exact": [
            ["value", "--train", i["owned"], "--generated", gen, "--out", out / "images_exact",
             "--index", "exact", "--k", "5", "--credit", "paper", *PIXELS],
        ],
        "images_ivfpq_quality": [
            ["value", "--train", i["owned"], "--generated", gen, "--out",
             out / "images_ivfpq_quality", "--index", "ivfpq", "--k", "5", "--quality",
             "sharpness", "--quality-norm", "minmax", "--temperature", "0.5", "--credit",
             "paper", *PIXELS],
        ],
        "images_rerank": [
            ["value", "--train", i["owned"], "--generated", "builtin:digits[1500:1520]", "--out",
             out / "images_rerank", "--index", "exact", "--k", "3", "--rerank", "none",
             "--metric", "sqeuclidean", "--credit", "paper", *PIXELS],
        ],
        "text": [
            ["value", "--train", i["train_txt"], "--generated", i["gen_txt"], "--out",
             out / "text", "--embedder", "minilm", "--k", "3", "--credit", "paper", "--cache",
             "none", "--quiet"],
        ],
        "precomputed_ivfpq": [
            ["value", "--train", i["train_emb"], "--generated", i["gen_emb"], "--out",
             out / "precomputed_ivfpq", "--index", "ivfpq", "--k", "10", "--credit", "paper",
             "--cache", "none", "--quiet"],
        ],
        "append": [
            ["value", "--train", i["owned"], "--generated", "builtin:digits[1500:1530]", "--out",
             out / "append", "--index", "exact", "--k", "5", "--credit", "paper", *PIXELS],
            ["value", "--append", out / "append", "--generated", "builtin:digits[1530:1560]",
             "--quiet"],
        ],
    }  # fmt: skip


def run_cases(out: Path) -> dict[str, Path]:
    """Run every case in process; returns case name -> its run folder."""
    from typer.testing import CliRunner

    from gmvaluator.cli import app

    out.mkdir(parents=True, exist_ok=True)
    (out / "inputs").mkdir(exist_ok=True)
    runner = CliRunner()
    folders = {}
    for name, commands in cases(inputs(out / "inputs"), out).items():
        for args in commands:
            res = runner.invoke(app, [str(a) for a in args])
            if res.exit_code != 0:
                raise RuntimeError(f"golden case {name} failed: {res.output}")
        folders[name] = out / name
    return folders


if __name__ == "__main__":
    import shutil

    for name, folder in run_cases(Path(sys.argv[1])).items():
        (EXPECTED / name).mkdir(parents=True, exist_ok=True)
        for file in COMPARED:
            shutil.copyfile(folder / file, EXPECTED / name / file)
        print(f"stored {name}")
