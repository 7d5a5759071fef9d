"""The demo: train a class-conditional VAE on real data, generate, and value the training set.

Everything runs through the same stages as ``gmvaluator value``: the generated images are
written to ``RUN/generated/samples.npz`` and valued like any other source.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator.config import ValueConfig
from gmvaluator.evaluate import identical_class_share
from gmvaluator.files import atomic_path, write_json
from gmvaluator.run.folder import writes_run
from gmvaluator.run.pipeline import RunOutcome, run_value
from gmvaluator.sources import BUILTINS, load_source
from gmvaluator.sources.builtin import FASHION_MNIST_CLASSES, fashion_mnist_available


@dataclass(frozen=True)
class DemoOutcome:
    outcome: RunOutcome
    data: str
    class_names: list[str]
    c1_share: float
    c1_per_class: dict[str, float]
    train_seconds: float
    wall_seconds: float


def pick_data(data: str) -> str:
    """``auto`` is Fashion-MNIST when the Debian package is installed, else scikit-learn digits."""
    if data == "auto":
        return "fashion-mnist" if fashion_mnist_available() else "digits"
    if data not in BUILTINS:
        from gmvaluator.errors import InputError

        raise InputError(f"--data must be 'auto' or one of {list(BUILTINS)}; got {data!r}.")
    return data


@writes_run
def run_demo(
    run_dir: str | Path,
    *,
    data: str = "auto",
    per_class: int = 30,
    epochs: int | None = None,
    cfg: ValueConfig | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> DemoOutcome:
    """Train, generate ``per_class`` samples of every class, value; return the summary data."""
    from gmvaluator.evaluate.generators import default_epochs, train_cvae

    t0 = time.perf_counter()
    run = Path(run_dir)
    data = pick_data(data)
    train_spec = f"builtin:{data}"
    train = load_source(train_spec)
    images = _as_gray_uint8(train.items.array)  # type: ignore[attr-defined]
    labels = np.asarray(train.labels, dtype=np.int64)
    n_classes = int(labels.max()) + 1
    _log(progress, f"training a class-conditional VAE on {len(images)} {data} images")
    model = train_cvae(
        images,
        labels,
        n_classes=n_classes,
        epochs=epochs or default_epochs(len(images)),
        seed=seed,
        progress=progress,
    )
    gen_labels = np.repeat(np.arange(n_classes), per_class)
    samples = model.sample(gen_labels, seed=seed)
    gen_path = run / "generated" / "samples.npz"
    _write_samples(gen_path, samples, gen_labels)
    model_dir = run / "generator"
    model.save(model_dir)
    cfg = cfg or ValueConfig(embedder="pixels", index="ivfpq", seed=seed)
    outcome = run_value(train_spec, str(gen_path), run, cfg, overwrite=overwrite, progress=progress)
    share = identical_class_share(outcome.result, labels, gen_labels)
    names = _class_names(data, n_classes)
    per_cls = {names[c]: float(share[gen_labels == c].mean()) for c in range(n_classes)}
    demo = DemoOutcome(
        outcome,
        data,
        names,
        float(share.mean()),
        per_cls,
        model.train_seconds,
        time.perf_counter() - t0,
    )
    write_json(run / "demo.json", demo_summary(demo))
    return demo


def _as_gray_uint8(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a[..., 0] if a.ndim == 4 else a


def _write_samples(path: Path, samples: np.ndarray, labels: np.ndarray) -> None:
    ids = np.array([f"gen/{int(y)}/{i:05d}" for i, y in enumerate(labels)])
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, images=samples, labels=labels, ids=ids)


def _class_names(data: str, n_classes: int) -> list[str]:
    if data == "fashion-mnist":
        return list(FASHION_MNIST_CLASSES)
    return [str(c) for c in range(n_classes)]


def demo_summary(demo: DemoOutcome, top: int = 10) -> dict[str, Any]:
    r = demo.outcome.result
    train = demo.outcome.train.dataset
    labels = np.asarray(train.labels)
    best = r.top(top)
    rows = [
        {
            "rank": int(row.rank),
            "train_id": row.train_id,
            "value": float(row.value),
            "n_matches": int(row.n_matches),
            "class": demo.class_names[int(labels[np.flatnonzero(train.ids == row.train_id)[0]])],
        }
        for row in best.itertuples()
    ]
    return {
        "data": demo.data,
        "n_train": len(r.train_ids),
        "n_generated": len(r.generated_ids),
        "k": r.k,
        "n_matched": r.n_matched,
        "index": r.config["index"]["factory"],
        "recall_at_k": r.recall,
        "recall_queries": r.recall_queries,
        "c1_identical_class": demo.c1_share,
        "c1_per_class": demo.c1_per_class,
        "top": rows,
        "generator_train_s": demo.train_seconds,
        "wall_s": demo.wall_seconds,
    }


def format_summary(s: dict[str, Any]) -> str:
    lines = [
        f"valued {s['n_train']} {s['data']} training images against {s['n_generated']} "
        f"generated by a class-conditional VAE (k={s['k']})",
        f"index {s['index']}: recall@{s['k']} = {s['recall_at_k']:.3f} against exact search "
        f"on {s['recall_queries']} generated queries",
        f"matched: {s['n_matched']} of {s['n_train']} training items received credit "
        f"({100 * s['n_matched'] / s['n_train']:.1f} %)",
        f"C1 identical class: {100 * s['c1_identical_class']:.1f} % of each generated sample's "
        f"top-{s['k']} contributors share its class",
        "top training items:",
        "  rank  value    matches  class         train_id",
    ]
    for row in s["top"]:
        lines.append(
            f"  {row['rank']:>4}  {row['value']:<7.4f}  {row['n_matches']:>7}  "
            f"{row['class']:<12}  {row['train_id']}"
        )
    lines.append(
        f"wall time {s['wall_s']:.1f} s (generator training {s['generator_train_s']:.1f} s)"
    )
    return "\n".join(lines)


def _log(enabled: bool, msg: str) -> None:
    # progress notes go to the "gmvaluator" logger; the command line shows them on stderr
    if enabled:
        _LOGGER.info(msg)


_LOGGER = logging.getLogger(__name__)
