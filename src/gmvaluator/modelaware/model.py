"""The model a re-score differentiates: a torch module, a per-example loss and how items become
the module's inputs.

A ``GradientModel`` holds

- ``module``: the trained network (a ``torch.nn.Module``);
- ``loss(module, batch) -> (B,)``: one loss per example of a batch (a mapping of tensors whose
  first dimension is the batch); the re-score differentiates it with respect to the module's
  parameters, one example at a time;
- ``prepare(examples) -> batch``: the items of the run (PIL images, texts or vectors, with
  their labels) as the module's inputs;
- ``noise(n, generator) -> batch`` (optional): the random draws a stochastic loss uses (a VAE's
  latent noise, a diffusion model's step and noise), drawn from a generator the re-score seeds
  per example, so an item's features never depend on the batch it was in; the loss reads them
  from the batch. A ``noise`` that also takes the keywords ``draw`` and ``draws`` is told which
  of the example's draws it makes (0 to draws - 1), so it can stratify them (a diffusion
  model's steps spread evenly over the draws);
- ``outputs`` (optional): other functions of the same signature to differentiate for the
  generated samples, by name (a diffusion model's D-TRAK output, for example); ``"loss"`` is
  the loss itself.

A model file (``gmvaluator value --model FILE.py``) is Python that defines
``load_model(checkpoint=None)`` returning a ``GradientModel`` (or any object with the same
attributes). Nothing is unpickled: the file builds the module and loads its weights itself.
"""

from __future__ import annotations

import hashlib
import inspect
import runpy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator.errors import InputError

#: What a model file must define.
ENTRY_POINT = "load_model"
#: The output function that is the loss itself.
LOSS = "loss"

Batch = Mapping[str, Any]
LossFn = Callable[[Any, Batch], Any]


@dataclass(frozen=True)
class Examples:
    """A batch of run items as ``prepare`` receives them: ``items`` are PIL images, strings or
    1-D float arrays (``kind`` says which), ``labels`` the source's labels (or None)."""

    kind: str
    items: Sequence[Any]
    labels: np.ndarray | None
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.items)

    def images(self, mode: str = "L") -> np.ndarray:
        """The items as one uint8 array (B, H, W) for mode "L" or (B, H, W, 3) for "RGB"."""
        if self.kind != "image":
            raise InputError(f"the model expects images but the items are {self.kind}s.")
        arrays = [np.asarray(im.convert(mode), dtype=np.uint8) for im in self.items]
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise InputError(
                f"the model needs images of one size but got sizes {sorted(shapes)[:3]}; "
                "resize the images or let the model file's prepare resize them."
            )
        return np.stack(arrays)


@dataclass(frozen=True)
class GradientModel:
    """A model and the functions the re-score differentiates (see the module docstring)."""

    module: Any
    loss: LossFn
    prepare: Callable[[Examples], Batch]
    noise: Callable[[int, Any], Batch] | None = None
    outputs: Mapping[str, LossFn] = field(default_factory=dict)
    name: str = "model"

    def output(self, name: str) -> LossFn:
        """The function named ``name``: the loss, or one of ``outputs``."""
        if name == LOSS:
            return self.loss
        if name not in self.outputs:
            known = ", ".join([LOSS, *self.outputs])
            raise InputError(
                f"the model {self.name!r} has no output function {name!r}; use one of {known}.",
                param="output",
            )
        return self.outputs[name]

    def noise_takes_draw(self) -> bool:
        """Whether ``noise`` accepts the keywords ``draw`` and ``draws``."""
        if self.noise is None:
            return False
        try:
            params = inspect.signature(self.noise).parameters
        except (TypeError, ValueError):
            return False
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return True
        return "draw" in params and "draws" in params

    def fingerprint(self) -> str:
        """A SHA-256 over the module's parameters and buffers (names, shapes, bytes) and the
        model's name and output names: what cached gradient features are keyed by."""
        h = hashlib.sha256()
        h.update(repr((self.name, sorted(self.outputs), type(self.module).__name__)).encode())
        for key, tensor in sorted(self.module.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes() if t.dtype.is_floating_point or t.numel() else b"")
        return h.hexdigest()


def as_gradient_model(obj: Any, where: str = "the model") -> GradientModel:
    """``obj`` as a ``GradientModel``: one already, or an object with ``module``, ``loss`` and
    ``prepare`` attributes (and optionally ``noise``, ``outputs``, ``name``)."""
    if isinstance(obj, GradientModel):
        model = obj
    else:
        missing = [a for a in ("module", "loss", "prepare") if not hasattr(obj, a)]
        if missing:
            raise InputError(
                f"{where} is a {type(obj).__name__} without {', '.join(missing)}; return a "
                "gmvaluator.modelaware.GradientModel(module=..., loss=..., prepare=...)."
            )
        model = GradientModel(
            module=obj.module,
            loss=obj.loss,
            prepare=obj.prepare,
            noise=getattr(obj, "noise", None),
            outputs=dict(getattr(obj, "outputs", {}) or {}),
            name=str(getattr(obj, "name", type(obj).__name__)),
        )
    import torch

    if not isinstance(model.module, torch.nn.Module):
        raise InputError(
            f"{where}: module is a {type(model.module).__name__}, not a torch.nn.Module."
        )
    if not any(p.requires_grad for p in model.module.parameters()):
        raise InputError(f"{where}: the module has no trainable parameters to differentiate.")
    for name, fn in [("loss", model.loss), ("prepare", model.prepare), *model.outputs.items()]:
        if not callable(fn):
            raise InputError(f"{where}: {name} is a {type(fn).__name__}, not a function.")
    return model


def load_model_file(path: str | Path, checkpoint: str | None = None) -> GradientModel:
    """Run a model file and return what its ``load_model(checkpoint)`` builds.

    Any failure (missing file, syntax error, an exception inside the file) becomes one
    InputError that names the file and the cause.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"model file {p} does not exist. Give a .py file that defines "
                         f"{ENTRY_POINT}().", param="model")  # fmt: skip
    try:
        namespace = runpy.run_path(str(p), run_name="gmvaluator_model")
    except Exception as exc:  # the user's file may fail in any way; report it as theirs
        raise InputError(
            f"model file {p} failed to load: {type(exc).__name__}: {exc}. Fix the file.",
            param="model",
        ) from exc
    entry = namespace.get(ENTRY_POINT)
    if not callable(entry):
        raise InputError(
            f"model file {p} defines no {ENTRY_POINT}(); add "
            f"`def {ENTRY_POINT}(checkpoint=None): return GradientModel(...)`.",
            param="model",
        )
    takes_checkpoint = bool(inspect.signature(entry).parameters)
    if checkpoint is not None and not takes_checkpoint:
        raise InputError(
            f"model file {p}: {ENTRY_POINT}() takes no checkpoint, but one was given "
            f"({checkpoint}); define {ENTRY_POINT}(checkpoint=None).",
            param="checkpoint",
        )
    try:
        obj = entry(checkpoint) if takes_checkpoint else entry()
    except Exception as exc:
        raise InputError(
            f"model file {p}: {ENTRY_POINT}({checkpoint or ''}) failed: {type(exc).__name__}: "
            f"{exc}. Fix the file or the checkpoint.",
            param="model",
        ) from exc
    return as_gradient_model(obj, f"model file {p}")


def file_hash(path: str | Path) -> str:
    """SHA-256 of a model file's text (recorded with a run)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
