"""The model-aware stage of a run (``gmvaluator value --model FILE.py``): load the model file
(once per checkpoint), check it on the run's items, and re-score every generated sample's
shortlist by its gradients (``gmvaluator.modelaware.rescore``).

Gradient features are kept in ``RUN/gradients/``, in a folder per model fingerprint and
settings, one part per batch: a killed run resumes from the last finished batch, and an
``--append`` reuses the training items' features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator.config import ValueConfig
from gmvaluator.core.result import ValuationResult
from gmvaluator.errors import InputError
from gmvaluator.modelaware.model import GradientModel, file_hash, load_model_file
from gmvaluator.modelaware.rescore import RescoreSettings, rescore
from gmvaluator.sources import Dataset

#: The sub-folder of a run that holds gradient features.
GRADIENTS = "gradients"
_BY_LABEL = {"auto": None, "yes": True, "no": False}


def rescore_settings(cfg: ValueConfig) -> RescoreSettings:
    """The re-score parameters a run's settings give."""
    if cfg.by_label not in _BY_LABEL:
        raise InputError(
            f"by_label {cfg.by_label!r} is not one of auto, yes, no.", param="by_label"
        )
    return RescoreSettings(
        candidates=cfg.shortlist,
        by_label=_BY_LABEL[cfg.by_label],
        ridge=float(cfg.ridge),
        output=cfg.model_output,
        draws=cfg.draws,
        output_draws=cfg.output_draws,
        dim=cfg.gradient_dim,
        seed=cfg.seed,
    )


def load_models(cfg: ValueConfig) -> list[GradientModel]:
    """One model per checkpoint of ``cfg.checkpoints`` (or the model file's own)."""
    assert cfg.model is not None
    names = [c.strip() for c in (cfg.checkpoints or "").split(",") if c.strip()]
    return [load_model_file(cfg.model, c) for c in names] or [load_model_file(cfg.model)]


def check_model(model: GradientModel, train: Dataset, generated: Dataset, output: str) -> None:
    """Run the model on two items of each side: the inputs must fit and the loss (and the
    output function) must give one finite value per example. Raises InputError naming the
    problem and the items."""
    import torch

    from gmvaluator.modelaware.features import example_batch

    fn = model.output(output)
    for ds, name, f in ((train, "loss", model.loss), (generated, output, fn)):
        rows = np.arange(min(2, len(ds)))
        examples = example_batch(ds, rows)
        where = f"items {examples.ids.tolist()} of {ds.name}"
        try:
            batch = dict(model.prepare(examples))
            if model.noise is not None:
                batch.update(model.noise(len(rows), torch.Generator().manual_seed(0)))
            with torch.no_grad():
                value = f(model.module, batch)
        except InputError:
            raise
        except Exception as exc:  # the user's code fails in any way; report it as theirs
            raise InputError(
                f"the model {model.name!r} cannot take {where}: {type(exc).__name__}: {exc}. "
                "Check that the model's inputs match the items (size, channels, labels) and "
                "that its prepare converts them.",
                param="model",
            ) from exc
        shape = tuple(getattr(value, "shape", ()))
        if shape != (len(rows),):
            raise InputError(
                f"the model {model.name!r}'s {name} returned shape {shape} for a batch of "
                f"{len(rows)} ({where}); it must return one value per example, shape "
                f"({len(rows)},) (use reduction='none' and sum over the other axes).",
                param="model",
            )
        if not bool(torch.isfinite(value).all()):
            raise InputError(
                f"the model {model.name!r}'s {name} is not finite on {where}; fix the loss.",
                param="model",
            )


def model_stage(
    result: ValuationResult,
    valuator: Any,
    train: Dataset,
    generated: Dataset,
    generated_vectors: np.ndarray,
    cfg: ValueConfig,
    run_dir: Path | None,
    *,
    progress: bool = False,
) -> ValuationResult:
    """``result`` re-scored by the model of ``cfg.model`` (unchanged without one)."""
    if cfg.model is None:
        return result
    settings = rescore_settings(cfg)
    models = load_models(cfg)
    for model in models:
        check_model(model, train, generated, settings.output)
    store = _store(run_dir)
    describe = {
        "model_file": str(cfg.model),
        "model_file_sha256": file_hash(cfg.model),
        "checkpoints": cfg.checkpoints,
        "model_name": models[0].name,
        "model_fingerprints": [m.fingerprint() for m in models],
    }
    return rescore(valuator, result, generated_vectors, models, train, generated, settings,
                   store, progress=progress, describe=describe)  # fmt: skip


def _store(run_dir: Path | None) -> Path:
    if run_dir is not None:
        return Path(run_dir) / GRADIENTS
    from gmvaluator.embed.cache import default_cache_dir

    return default_cache_dir().parent / GRADIENTS
