"""Stages of a valuation run and the run folder that connects them.

    RUN/config.json                 resolved settings (what decides the numbers)
    RUN/embeddings/{train,generated}.npy + .json   vectors, with source hash and embedder
    RUN/index/                      the fitted Valuator (faiss index, embeddings, index.json)
    RUN/values.parquet              one row per training item
    RUN/attributions.parquet        one row per generated sample and match
    RUN/run.json                    versions, input hashes, counts, timings, recall

Each stage reuses its output when the JSON next to it matches what it would compute, so a
re-run resumes finished work; asking for different settings in an existing run is an error.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gmvaluator import __version__
from gmvaluator._io import read_json, save_npy, write_json
from gmvaluator.config import ValueConfig, diff_settings
from gmvaluator.errors import InputError, ResumeError
from gmvaluator.result import ValuationResult
from gmvaluator.sources import Dataset, content_hash, load_source
from gmvaluator.value import Valuator, check_same_dim


@dataclass
class Embedded:
    """A source with its embeddings and the hash of its content."""

    dataset: Dataset
    vectors: np.ndarray
    source_hash: str
    seconds: float
    reused: bool


@dataclass
class RunOutcome:
    run_dir: Path
    result: ValuationResult
    train: Embedded
    generated: Embedded
    timings: dict[str, float] = field(default_factory=dict)


def check_run_config(run_dir: Path, settings: dict[str, Any], overwrite: bool = False) -> None:
    """Refuse to reuse a run folder made with other settings, naming the keys that differ."""
    path = run_dir / "config.json"
    if path.is_file() and not overwrite:
        old = read_json(path)
        changed = diff_settings(old, settings)
        if changed:
            raise ResumeError(
                f"run folder {run_dir} was made with different settings: {', '.join(changed)}. "
                "Use a new --out folder, or --overwrite to replace it."
            )
    write_json(path, settings)


def embed_stage(
    spec: str, role: str, cfg: ValueConfig, run_dir: Path | None, progress: bool = True
) -> Embedded:
    """Read ``spec``, embed it (or reuse ``RUN/embeddings/<role>.npy``) and return both."""
    from gmvaluator.embed import default_embedder, embed_dataset, embedder_fingerprint, get_embedder

    ds = load_source(spec, text_column=cfg.text_column)
    source_hash = content_hash(ds)
    embedder = get_embedder(cfg.embedder or default_embedder(ds.kind))
    meta = {
        "role": role,
        "source": spec,
        "source_sha256": source_hash,
        "n": len(ds),
        "embedder": embedder_fingerprint(embedder),
    }
    npy = run_dir / "embeddings" / f"{role}.npy" if run_dir else None
    if npy is not None and npy.is_file() and npy.with_suffix(".json").is_file():
        old = read_json(npy.with_suffix(".json"))
        if {key: old.get(key) for key in meta} == meta:
            vectors = np.load(npy, mmap_mode="r", allow_pickle=False)
            return Embedded(ds, vectors, source_hash, old.get("seconds", 0.0), reused=True)
    t0 = time.perf_counter()
    vectors = embed_dataset(ds, embedder, batch_size=cfg.batch_size, progress=progress)
    seconds = time.perf_counter() - t0
    if npy is not None:
        save_npy(npy, vectors)
        write_json(
            npy.with_suffix(".json"), {**meta, "dim": int(vectors.shape[1]), "seconds": seconds}
        )
    return Embedded(ds, vectors, source_hash, seconds, reused=False)


def index_stage(train: Embedded, cfg: ValueConfig, run_dir: Path | None) -> tuple[Valuator, float]:
    """Fit the valuator on the training embeddings, or reopen ``RUN/index`` when it matches."""
    folder = run_dir / "index" if run_dir else None
    params = cfg.valuator_params()
    if folder is not None and (folder / "index.json").is_file():
        meta = read_json(folder / "index.json")
        if meta.get("valuator") == params and meta.get("source_sha256") == train.source_hash:
            return Valuator.load(folder), 0.0
    t0 = time.perf_counter()
    valuator = Valuator(**params).fit(train.vectors, ids=train.dataset.ids)
    seconds = time.perf_counter() - t0
    if folder is not None:
        valuator.save(folder, extra={"source_sha256": train.source_hash})
    return valuator, seconds


def read_quality(path: str | Path, generated_ids: np.ndarray) -> np.ndarray:
    """q_j from a CSV with columns ``id`` and ``quality``, one row per generated sample."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"quality file {path} does not exist. Check the --quality path.")
    try:
        df = pd.read_csv(path, dtype={"id": str})
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"quality file {path} is not a readable CSV: {exc}.") from exc
    missing_cols = {"id", "quality"} - set(df.columns)
    if missing_cols:
        raise InputError(
            f"quality file {path} needs columns 'id' and 'quality'; it has {list(df.columns)}."
        )
    if df["id"].duplicated().any():
        dup = df.loc[df["id"].duplicated(), "id"].iloc[0]
        raise InputError(f"quality file {path} lists id {dup!r} more than once.")
    scores = pd.to_numeric(df["quality"], errors="coerce")
    lookup = dict(zip(df["id"], scores, strict=False))
    absent = [g for g in generated_ids if g not in lookup]
    if absent:
        raise InputError(
            f"quality file {path} has no score for generated sample {absent[0]!r} "
            f"({len(absent)} missing). Add a row for every generated id."
        )
    return np.array([lookup[g] for g in generated_ids], dtype=np.float64)


def value_stage(
    valuator: Valuator,
    train: Embedded,
    generated: Embedded,
    quality: np.ndarray | None,
    run_dir: Path | None,
) -> ValuationResult:
    """Value and write ``values.parquet`` and ``attributions.parquet``."""
    result = valuator.value(generated.vectors, quality=quality, ids=generated.dataset.ids)
    if run_dir is not None:
        ds = train.dataset
        result.save(run_dir, label=ds.labels, contributor=ds.contributors)
    return result


def run_value(
    train_spec: str,
    generated_spec: str,
    run_dir: str | Path | None,
    cfg: ValueConfig,
    *,
    quality: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> RunOutcome:
    """The whole ``gmvaluator value`` job: embed both sources, index, value, record."""
    t_start = time.perf_counter()
    run = Path(run_dir) if run_dir is not None else None
    settings = {"train": train_spec, "generated": generated_spec, "quality": _opt(quality)}
    settings.update(cfg.to_dict())
    if run is not None:
        check_run_config(run, settings, overwrite)
    train = embed_stage(train_spec, "train", cfg, run, progress)
    generated = embed_stage(generated_spec, "generated", cfg, run, progress)
    check_same_dim(train.vectors.shape[1], generated.vectors.shape[1])
    valuator, t_index = index_stage(train, cfg, run)
    q = read_quality(quality, generated.dataset.ids) if quality is not None else None
    t0 = time.perf_counter()
    result = value_stage(valuator, train, generated, q, run)
    timings = {
        "embed_train_s": 0.0 if train.reused else train.seconds,
        "embed_generated_s": 0.0 if generated.reused else generated.seconds,
        "index_s": t_index,
        "value_s": time.perf_counter() - t0,
        "total_s": time.perf_counter() - t_start,
    }
    if run is not None:
        write_json(run / "run.json", run_record(result, train, generated, timings, settings))
    return RunOutcome(run or Path("."), result, train, generated, timings)


def run_record(
    result: ValuationResult,
    train: Embedded,
    generated: Embedded,
    timings: dict[str, float],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """What ``run.json`` says: versions, input hashes, counts, timings and index recall."""
    return {
        "gmvaluator": __version__,
        "versions": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "inputs": {
            "train": {
                "source": settings["train"],
                "sha256": train.source_hash,
                "n": len(train.dataset),
            },
            "generated": {
                "source": settings["generated"],
                "sha256": generated.source_hash,
                "n": len(generated.dataset),
            },
        },
        "counts": result.summary(),
        "index": result.config.get("index"),
        "recall": {"recall_at_k": result.recall, "k": result.k, "queries": result.recall_queries},
        "distance": result.config.get("distance"),
        "timings": {**timings, **{f"valuator_{k}": v for k, v in result.timings.items()}},
        "reused": {"embed_train": train.reused, "embed_generated": generated.reused},
    }


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in (
        "numpy",
        "faiss-cpu",
        "pandas",
        "pyarrow",
        "torch",
        "pillow",
        "sentence-transformers",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _opt(path: str | Path | None) -> str | None:
    return None if path is None else str(path)
