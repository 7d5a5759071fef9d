"""Published data-attribution methods as baselines, run by dattri (``pip install dattri``) on a
reference generator's own loss: TRAK, TracIn and the gradient dot product.

Each method differentiates the generator's ``gradient_model()``: its per-example loss on one
training item (x_i, y_i) and on one generated sample (g_j, y_j). A stochastic loss (a VAE's
latent draw, a diffusion model's step and noise) gets ``draws`` fixed noise draws per item,
drawn from a generator seeded by ``seed``, the item's side (training or generated) and its
index, and carried in the dataset next to the item, so the loss of an item is the same function
of the parameters in every call and every method.

- ``trak``: dattri's ``TRAKAttributor``: phi_j^T (Phi^T Phi + r I)^-1 phi_i with phi the
  projected loss gradients (divided by the square root of the parameter count, as dattri does)
  and r the regularization (dattri's default 0 when None). TRAK's per-item weight 1 - p_i is 1:
  a generative loss has no probability of being right (as in D-TRAK and Journey-TRAK).
- ``tracin``: dattri's ``TracInAttributor`` over the given checkpoints, each with weight 1 (the
  learning rate, constant for the reference generators, only scales the scores): with one
  model it is ``grad-dot``.
- ``grad-dot``: ``TracInAttributor`` on one model with weight 1: phi_j^T phi_i.

Sign: every matrix is (m generated, n training) and larger means that training item i lowered
the loss of generated sample j (a gradient step on i moves j's loss down), the convention of
``criteria.lds`` (outputs are minus the loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gmvaluator.embed.deps import import_optional
from gmvaluator.errors import InputError, check_param
from gmvaluator.modelaware.features import example_batch
from gmvaluator.modelaware.model import GradientModel, as_gradient_model
from gmvaluator.sources.base import Dataset, ImageItems

PEERS = ("trak", "tracin", "grad-dot")
#: Regularizations tried by ``tuned_peer``. dattri adds r I to Phi^T Phi, whose trace is
#: sum_i |grad_i|^2 / parameters (its projection keeps norms); for the reference CVAE trained on
#: all the digits that is 6.7, a mean eigenvalue of 0.0033 over 2048 dimensions, so the grid
#: spans 3e-4 to 300 times it (the re-score's own ridge is 100 times it).
TRAK_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


@dataclass(frozen=True)
class TunedPeer:
    """A peer's attributions at the regularization with the best LDS, and the LDS of each."""

    method: str
    attributions: np.ndarray
    regularization: float | None
    lds_by_value: dict[float | None, float]


def peer_attributions(
    method: str,
    generator: Any,
    train_images: np.ndarray,
    train_labels: np.ndarray | None,
    gen_images: np.ndarray,
    gen_labels: np.ndarray | None,
    *,
    proj_dim: int = 2048,
    regularization: float | None = None,
    seed: int = 0,
    draws: int = 1,
    batch_size: int = 128,
) -> np.ndarray:
    """(m, n) attributions of ``method`` (one of ``PEERS``); larger: training item i helped
    generated sample j. ``generator`` is a reference generator (or a ``GradientModel``), or a
    list of them: checkpoints of one architecture, averaged by TRAK and summed by TracIn.
    ``batch_size`` items share one projection: dattri regenerates it for every batch on the CPU,
    so larger batches are faster (at batch_size x parameters floats of gradients)."""
    _check(method, proj_dim, regularization, draws, batch_size)
    models = [_gradient_model(g) for g in _as_list(generator)]
    if method == "grad-dot" and len(models) > 1:
        raise InputError(
            f"grad-dot takes one model but got {len(models)}; use tracin for checkpoints.",
            param="generator",
        )
    task_mod = import_optional("dattri.task", "dattri", "the peer baselines")
    module = _Wrapped.build(models[0])
    keys, train = _loader(models[0], train_images, train_labels, "training", seed, draws,
                          batch_size)  # fmt: skip
    _, gen = _loader(models[0], gen_images, gen_labels, "generated", seed, draws, batch_size)
    task = task_mod.AttributionTask(
        loss_func=_loss_func(module, keys, draws),
        model=module,
        checkpoints=[_Wrapped.build(m).state_dict() for m in models],
    )
    # a fresh dict each time: dattri updates its module-level default in place
    proj = {"proj_dim": proj_dim, "proj_max_batch_size": 32, "proj_seed": seed, "device": "cpu"}
    scores = _attribute(method, task, train, gen, proj, regularization, len(models))
    out = scores.T.numpy().astype(np.float64)
    if not np.isfinite(out).all():
        raise InputError(
            f"{method} gave non-finite attributions; check the generator's loss, or give TRAK "
            "a larger regularization.",
            param="regularization",
        )
    return out


def tuned_peer(
    method: str,
    generator: Any,
    train_images: np.ndarray,
    train_labels: np.ndarray | None,
    gen_images: np.ndarray,
    gen_labels: np.ndarray | None,
    *,
    subsets: np.ndarray,
    outputs: np.ndarray,
    grid: Sequence[float | None] = TRAK_GRID,
    **options: Any,
) -> TunedPeer:
    """``method`` at the value of ``grid`` (TRAK's regularization) with the best mean LDS
    against ``subsets`` (R, n) and ``outputs`` (R, m), measured on this very run: an upper
    bound of what tuning can give, to be reported as such. TracIn and grad-dot have no
    regularization: the grid is ignored and their one run is returned."""
    from gmvaluator.evaluate.criteria import lds

    values: Sequence[float | None] = tuple(grid) if method == "trak" else (None,)
    if not values:
        raise InputError("tuned_peer needs at least one value in grid.", param="grid")
    args = (method, generator, train_images, train_labels, gen_images, gen_labels)
    by_value: dict[float | None, float] = {}
    best: tuple[float, float | None, np.ndarray] = (-np.inf, values[0], np.empty(0))
    for value in values:
        tau = peer_attributions(*args, regularization=value, **options)
        per_sample = lds(tau, subsets, outputs)
        finite = per_sample[np.isfinite(per_sample)]
        by_value[value] = float(finite.mean()) if len(finite) else float("nan")
        if not best[2].size or (len(finite) and by_value[value] > best[0]):
            best = (by_value[value] if len(finite) else -np.inf, value, tau)
    return TunedPeer(method, best[2], best[1], by_value)


# -- pieces --------------------------------------------------------------------------------------
def _attribute(
    method: str,
    task: Any,
    train: Any,
    gen: Any,
    proj: dict[str, Any],
    regularization: float | None,
    n_models: int,
) -> Any:
    """dattri's (n, m) scores of ``method`` on ``task``."""
    import torch

    algo = import_optional("dattri.algorithm", "dattri", "the peer baselines")
    with torch.no_grad():
        if method != "trak":
            weights = torch.ones(n_models)
            attributor = algo.TracInAttributor(task=task, weight_list=weights,
                                               normalized_grad=False, projector_kwargs=proj,
                                               device="cpu")  # fmt: skip
            return attributor.attribute(train, gen)
        attributor = algo.TRAKAttributor(
            task=task,
            correct_probability_func=_never_right,
            projector_kwargs=proj,
            device="cpu",
            regularization=0.0 if regularization is None else float(regularization),
        )
        try:
            attributor.cache(train)
        except RuntimeError as exc:  # torch's LinAlgError: a singular kernel
            raise InputError(
                f"TRAK's kernel Phi^T Phi is singular ({len(train.dataset)} training items, "
                f"proj_dim={proj['proj_dim']}): give a regularization > 0 or a proj_dim below "
                "the number of training items.",
                param="regularization",
            ) from exc
        return attributor.attribute(gen)


def _check(
    method: str, proj_dim: int, regularization: float | None, draws: int, batch_size: int
) -> None:
    owner = "peer_attributions"
    check_param(owner, "method", method, method in PEERS, f"one of {PEERS}")
    for name, v in (("proj_dim", proj_dim), ("draws", draws), ("batch_size", batch_size)):
        ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
        check_param(owner, name, v, ok, "an int in the range [1, inf)")
    r = regularization
    ok = r is None or (isinstance(r, (int, float)) and not isinstance(r, bool) and r >= 0)
    check_param(owner, "regularization", r, ok and (r is None or np.isfinite(r)), "None or >= 0")


def _as_list(generator: Any) -> list[Any]:
    out = list(generator) if isinstance(generator, (list, tuple)) else [generator]
    if not out:
        raise InputError("peer_attributions needs at least one generator.", param="generator")
    return out


def _gradient_model(generator: Any) -> GradientModel:
    if hasattr(generator, "gradient_model"):
        return as_gradient_model(generator.gradient_model())
    return as_gradient_model(generator, f"the generator ({type(generator).__name__})")


def _never_right(params: Any, data: Any) -> Any:
    """TRAK's probability of the right answer: 0 for a generative loss, so 1 - p = 1 (it reads
    the data only so that vmap sees a batched output)."""
    return data[0].sum() * 0.0


class _Wrapped:
    """A module whose forward is the model's loss, so that dattri's ``functional_call`` swaps
    the generator's parameters wherever the loss uses them."""

    @staticmethod
    def build(model: GradientModel) -> Any:
        import torch

        class LossModule(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = model.module

            def forward(self, batch: Any) -> Any:
                return model.loss(self.inner, batch)

        out = LossModule()
        out.eval()
        return out


def _loader(
    model: GradientModel,
    images: np.ndarray,
    labels: np.ndarray | None,
    side: str,
    seed: int,
    draws: int,
    batch_size: int,
) -> tuple[tuple[list[str], list[str]], Any]:
    """((data keys, noise keys), an unshuffled DataLoader of tuples: the prepared tensors of
    each item, then its ``draws`` noise draws (seeded by seed, side and index))."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    x = np.asarray(images)
    ds = Dataset(name=side, kind="image", ids=np.array([str(i) for i in range(len(x))]),
                 items=ImageItems(array=x), labels=labels)  # fmt: skip
    prepared = dict(model.prepare(example_batch(ds, np.arange(len(x)))))
    data_keys = sorted(prepared)
    noise_keys: list[str] = []
    tensors = [torch.as_tensor(prepared[k]) for k in data_keys]
    if model.noise is not None:
        side_code = {"training": 1, "generated": 2}[side]
        per_item = []
        for i in range(len(x)):
            # torch's CPU generator keeps only the low 32 bits of a seed: hash all three into them
            state = np.random.SeedSequence([seed, side_code, i]).generate_state(1)[0]
            gen = torch.Generator().manual_seed(int(state))
            per_item.append(dict(model.noise(draws, gen)))
        noise_keys = sorted(per_item[0])
        tensors += [torch.stack([p[k] for p in per_item]) for k in noise_keys]
    loader = DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=False)
    return (data_keys, noise_keys), loader


def _loss_func(module: Any, keys: tuple[list[str], list[str]], draws: int) -> Any:
    """dattri's per-example loss ``f(params, data)``: the model's loss on one item, averaged over
    its noise draws (the item repeated once per draw)."""
    from torch.func import functional_call

    data_keys, noise_keys = keys
    size = draws if noise_keys else 1

    def f(params: Any, data: Any) -> Any:
        batch = {k: v.unsqueeze(0).expand(size, *v.shape) for k, v in
                 zip(data_keys, data, strict=False)}  # fmt: skip
        batch.update(zip(noise_keys, data[len(data_keys) :], strict=True))
        return functional_call(module, params, (batch,)).mean()

    return f


#: The peers an LDS experiment can run beside its valuers, by name.
LDS_PEERS = ("dattri-trak", "dattri-trak-tuned", "dattri-tracin", "dattri-grad-dot")


def lds_peers(names: Sequence[str], **options: Any) -> dict[str, Any]:
    """``run_lds``'s ``peers`` for ``names`` (of ``LDS_PEERS``): each a function
    ``(model, images, labels, gen, gen_labels, subsets, outputs) -> (m, n)``. ``-tuned`` picks
    TRAK's regularization on the run's own LDS (an upper bound); the others run at dattri's
    defaults. ``options`` go to ``peer_attributions`` (``proj_dim``, ``draws``, ``seed``)."""
    unknown = sorted(set(names) - set(LDS_PEERS))
    if unknown:
        raise InputError(f"unknown peers {unknown}; use any of {', '.join(LDS_PEERS)}.",
                         param="peers")  # fmt: skip
    import_optional("dattri", "dattri", "the published peers")

    def run(name: str) -> Any:
        method = name.removeprefix("dattri-").removesuffix("-tuned")

        def attribute(model: Any, images: Any, labels: Any, gen: Any, gen_labels: Any,
                      subsets: np.ndarray, outputs: np.ndarray) -> np.ndarray:  # fmt: skip
            args = (method, model, images, labels, gen, gen_labels)
            if name.endswith("-tuned"):
                return tuned_peer(*args, subsets=subsets, outputs=outputs, **options).attributions
            return peer_attributions(*args, **options)

        return attribute

    return {name: run(name) for name in names}
