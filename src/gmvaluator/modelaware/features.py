"""Gradient features: each item's per-example gradient of a model's loss (or another output
function), projected to ``dim`` dimensions.

    phi(z) = P^T (1/D) sum_{t=1..D} grad_theta f(theta; z, noise_t(z))

- **Per-example gradients** come from ``torch.func`` (``vmap`` over ``grad`` of a
  ``functional_call``), one batch at a time; a module ``vmap`` cannot trace (data-dependent
  control flow, in-place ops on inputs) falls back to one backward pass per example, with the
  same result. ``torch.func`` was chosen over dattri's task machinery because it is what that
  machinery wraps on the CPU, without the extra package; ``bench/model_aware_cost.py`` times
  both.
- **Noise** of a stochastic loss is drawn per example from a generator seeded by the run's
  seed, the item's content key and the draw number, so an item's features do not depend on
  its batch or on the order of the run; ``D`` draws are averaged.
- **Projection** ``P`` (parameters x ``dim``) is never held whole for a large model:
  ``gaussian`` generates it block by block from the seed (N(0, 1/dim) entries), keeping the
  blocks only while they fit in ``PROJECTION_CACHE_BYTES``; ``sparse`` is a count sketch (each
  parameter adds +-1/sqrt(s) to ``s`` seeded coordinates), which needs parameters x s integers.
- **Storage**: features are kept in an ``EmbeddingCache`` keyed by each item's content and
  label, in a folder named by the model's fingerprint and every setting above, one part per
  batch: a killed run resumes from the last finished batch, and a later run on the same model
  reuses every feature already computed.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator.embed.cache import EmbeddingCache, item_keys
from gmvaluator.errors import InputError, check_param
from gmvaluator.modelaware.model import LOSS, Examples, GradientModel
from gmvaluator.sources.base import Dataset

PROJECTIONS = ("gaussian", "sparse")
#: Bytes of projection blocks kept between batches (beyond it they are regenerated).
PROJECTION_CACHE_BYTES = 512 * 2**20
#: Bytes of one batch of per-example gradients (batch x parameters float32) at most.
GRADIENT_BATCH_BYTES = 1 << 30
#: Nonzeros per parameter of the sparse projection.
SPARSE_NONZEROS = 4
#: Parameters per generated block of the Gaussian projection (times dim floats).
_BLOCK_FLOATS = 2**25


@dataclass(frozen=True)
class FeatureSettings:
    """How gradient features are made; every field is part of the cache key."""

    dim: int = 2048
    draws: int = 1
    projection: str = "gaussian"
    seed: int = 0
    batch_size: int = 32

    def __post_init__(self) -> None:
        owner = "FeatureSettings"
        check_param(owner, "dim", self.dim, _is_int(self.dim) and self.dim >= 1, "an int >= 1")
        ok = _is_int(self.draws) and self.draws >= 1
        check_param(owner, "draws", self.draws, ok, "an int >= 1")
        ok = self.projection in PROJECTIONS
        check_param(owner, "projection", self.projection, ok, f"one of {PROJECTIONS}")
        check_param(owner, "seed", self.seed, _is_int(self.seed), "an int")
        ok = _is_int(self.batch_size) and self.batch_size >= 1
        check_param(owner, "batch_size", self.batch_size, ok, "an int >= 1")


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


class Projector:
    """A seeded random projection of flat gradients (B, P) to (B, dim)."""

    def __init__(self, n_params: int, dim: int, kind: str, seed: int) -> None:
        import torch

        self.n_params, self.dim, self.kind, self.seed = n_params, dim, kind, seed
        self._blocks: dict[int, Any] = {}
        self._keep = n_params * dim * 4 <= PROJECTION_CACHE_BYTES
        self.block = max(1, _BLOCK_FLOATS // dim)
        if kind == "sparse":
            gen = torch.Generator().manual_seed(_mix(seed, b"sparse"))
            idx = torch.randint(0, dim, (n_params, SPARSE_NONZEROS), generator=gen)
            signs = torch.randint(0, 2, (n_params, SPARSE_NONZEROS), generator=gen) * 2 - 1
            cols = torch.arange(n_params).repeat_interleave(SPARSE_NONZEROS)
            values = signs.float().reshape(-1) / SPARSE_NONZEROS**0.5
            # (dim, P) in CSR: one sparse product per batch, P x s numbers held
            coo = torch.sparse_coo_tensor(torch.stack([idx.reshape(-1), cols]), values,
                                          (dim, n_params), check_invariants=True)  # fmt: skip
            with warnings.catch_warnings():  # torch calls its CSR support beta
                warnings.simplefilter("ignore", UserWarning)
                self._sketch = coo.coalesce().to_sparse_csr()

    def _gaussian_block(self, number: int) -> Any:
        import torch

        if number in self._blocks:
            return self._blocks[number]
        lo = number * self.block
        rows = min(self.block, self.n_params - lo)
        gen = torch.Generator().manual_seed(_mix(self.seed, b"gaussian", number))
        block = torch.randn((rows, self.dim), generator=gen) / self.dim**0.5
        if self._keep:
            self._blocks[number] = block
        return block

    def __call__(self, grads: Any) -> Any:
        import torch

        if self.kind == "sparse":
            return (self._sketch @ grads.T).T
        out = torch.zeros((len(grads), self.dim))
        for number, lo in enumerate(range(0, self.n_params, self.block)):
            out += grads[:, lo : lo + self.block] @ self._gaussian_block(number)
        return out


def _mix(seed: int, *parts: Any) -> int:
    """A 63-bit seed from the run's seed and any parts (bytes, ints)."""
    h = hashlib.blake2b(str(int(seed)).encode(), digest_size=8)
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
    return int.from_bytes(h.digest(), "little") >> 1


class GradientFeaturizer:
    """Projected per-example gradients of one model's function ``output``."""

    def __init__(self, model: GradientModel, settings: FeatureSettings, output: str = LOSS):
        import torch

        self.model, self.settings, self.output = model, settings, output
        self.fn = model.output(output)
        module = model.module
        module.eval()
        self.names = [n for n, p in module.named_parameters() if p.requires_grad]
        self.params = {n: p.detach() for n, p in module.named_parameters() if p.requires_grad}
        self.frozen = {n: p.detach() for n, p in module.named_parameters() if not p.requires_grad}
        self.buffers = {n: b.detach() for n, b in module.named_buffers()}
        self.n_params = int(sum(p.numel() for p in self.params.values()))
        self.projector = Projector(self.n_params, settings.dim, settings.projection, settings.seed)
        self._wrapped = _wrapper(module, self.fn)
        #: per-parameter factors applied before the projection (None: none)
        self.scale: Any = None
        self._vmap_ok: bool | None = None
        self._noise_told = model.noise_takes_draw()
        self._torch = torch

    def fingerprint(self) -> dict[str, Any]:
        """What the cached features of this featurizer depend on."""
        return {
            "kind": "gradient-features",
            "model": self.model.fingerprint(),
            "output": self.output,
            "n_params": self.n_params,
            **asdict(self.settings),
        }

    def batch_size(self) -> int:
        """Examples per batch: the setting, fewer when their gradients would pass
        ``GRADIENT_BATCH_BYTES`` (a large model gets small batches, not an out-of-memory)."""
        fits = max(1, GRADIENT_BATCH_BYTES // (4 * max(1, self.n_params)))
        return int(min(self.settings.batch_size, fits))

    # -- gradients ---------------------------------------------------------------------------
    def _call(self, params: dict[str, Any], batch: dict[str, Any]) -> Any:
        from torch.func import functional_call

        state = {f"inner.{n}": t for part in (params, self.frozen, self.buffers)
                 for n, t in part.items()}  # fmt: skip
        return functional_call(self._wrapped, state, (batch,))

    def _grads_vmap(self, batch: dict[str, Any]) -> Any:
        from torch.func import grad, vmap

        def one(params: dict[str, Any], example: dict[str, Any]) -> Any:
            single = {k: v.unsqueeze(0) for k, v in example.items()}
            return self._call(params, single).sum()

        g = vmap(grad(one), in_dims=(None, 0), randomness="error")(self.params, batch)
        return self._torch.cat([g[n].reshape(len(g[n]), -1) for n in self.names], 1)

    def _grads_loop(self, batch: dict[str, Any]) -> Any:
        torch = self._torch
        size = len(next(iter(batch.values())))
        out = torch.empty((size, self.n_params))
        params = {n: p.clone().requires_grad_(True) for n, p in self.params.items()}
        for i in range(size):
            single = {k: v[i : i + 1] for k, v in batch.items()}
            value = self._call(params, single).sum()
            grads = torch.autograd.grad(value, [params[n] for n in self.names], allow_unused=True)
            flat = [g if g is not None else torch.zeros_like(params[n]) for g, n in
                    zip(grads, self.names, strict=True)]  # fmt: skip
            out[i] = torch.cat([g.reshape(-1) for g in flat])
        return out

    def gradients(self, batch: dict[str, Any]) -> Any:
        """Flat per-example gradients (B, P) of the output function on a prepared batch."""
        if self._vmap_ok is not False:
            try:
                g = self._grads_vmap(batch)
                self._vmap_ok = True
                return g
            except Exception:  # vmap cannot trace every module; the loop gives the same result
                if self._vmap_ok:
                    raise
                self._vmap_ok = False
        return self._grads_loop(batch)

    # -- batches -----------------------------------------------------------------------------
    def _noise(self, keys: np.ndarray, draw: int) -> dict[str, Any]:
        if self.model.noise is None:
            return {}
        torch = self._torch
        told = {"draw": draw, "draws": self.settings.draws} if self._noise_told else {}
        parts = []
        for key in keys.tolist():
            gen = torch.Generator().manual_seed(_mix(self.settings.seed, key, draw))
            parts.append(dict(self.model.noise(1, gen, **told)))
        return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}

    def raw(self, examples: Examples, keys: np.ndarray) -> Any:
        """(B, P) per-example gradients averaged over the noise draws, not projected."""
        torch = self._torch
        batch = dict(self.model.prepare(examples))
        total = None
        for draw in range(self.settings.draws):
            full = {**batch, **self._noise(keys, draw)}
            with torch.enable_grad():
                g = self.gradients(full)
            total = g if total is None else total + g
        assert total is not None
        return total / self.settings.draws

    def features(self, examples: Examples, keys: np.ndarray) -> np.ndarray:
        """(B, dim) float32 features of one batch of examples (``keys`` seed their noise)."""
        torch = self._torch
        g = self.raw(examples, keys)
        with torch.no_grad():
            projected = self.projector(g if self.scale is None else g * self.scale)
        out = projected.numpy().astype(np.float32)
        if not np.isfinite(out).all():
            bad = examples.ids[~np.isfinite(out).all(axis=1)][:3].tolist()
            raise InputError(
                f"the model's {self.output} gave non-finite gradients for items {bad}; check "
                "the loss on those items (a log of zero, a division by zero)."
            )
        return out


def _wrapper(module: Any, fn: Callable[[Any, Any], Any]) -> Any:
    """A module whose forward is ``fn(module, batch)``: ``functional_call`` on it swaps the
    parameters of ``module`` (its submodule ``inner``) wherever ``fn`` uses them."""
    import torch

    class Call(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, batch: Any) -> Any:
            return fn(self.inner, batch)

    return Call()


def example_batch(ds: Dataset, rows: np.ndarray) -> Examples:
    """The items of ``ds`` at ``rows`` as ``Examples``."""
    part = ds.take(rows)
    items = part.items
    listed = list(items) if isinstance(items, Sequence) else [row for row in np.asarray(items)]
    return Examples(kind=ds.kind, items=listed, labels=part.labels, ids=part.ids)


def feature_keys(ds: Dataset, rows: np.ndarray) -> np.ndarray:
    """Content keys of rows, with their labels (a conditional model's loss depends on both)."""
    keys = item_keys(ds, rows)
    if ds.labels is None:
        return keys
    labels = ds.labels[np.asarray(rows, dtype=np.int64)]
    out = np.empty_like(keys)
    for j, (key, label) in enumerate(zip(keys.tolist(), labels.tolist(), strict=True)):
        out[j] = hashlib.blake2b(key + repr(label).encode(), digest_size=len(key)).digest()
    return out


def featurize(
    featurizer: GradientFeaturizer,
    ds: Dataset,
    rows: np.ndarray,
    store: str | Path,
    *,
    progress: bool = False,
    label: str = "",
) -> np.ndarray:
    """(len(rows), dim) features of ``ds`` at ``rows``: read from ``store`` where computed
    before, the rest computed one batch at a time and added to it (one part per batch)."""
    rows = np.asarray(rows, dtype=np.int64)
    cache = EmbeddingCache(store, featurizer.fingerprint())
    keys = feature_keys(ds, rows)
    found, _ = cache.get(keys)
    todo = rows[~found]
    size = featurizer.batch_size()
    from gmvaluator.progress import bar as progress_bar

    desc = f"gradients {label or ds.name}"
    with progress_bar(len(todo), desc, progress=progress) as bar:
        for lo in range(0, len(todo), size):
            part = todo[lo : lo + size]
            part_keys = feature_keys(ds, part)
            cache.put(part_keys, featurizer.features(example_batch(ds, part), part_keys))
            bar.update(len(part))
    found, vecs = cache.get(keys)
    if not found.all() or vecs is None:
        missing = int((~found).sum())
        raise InputError(
            f"gradient features of {missing} items of {ds.name} could not be stored in "
            f"{cache.folder}; check that it is writable."
        )
    return vecs
