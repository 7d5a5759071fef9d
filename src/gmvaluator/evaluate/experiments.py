"""Experiments: train reference generators, draw generated sets, value, score the criteria.

Each ``run_*`` function repeats its criterion over generator seeds and draws of the generated
set and returns a JSON-ready dict::

    {"criterion": ..., "setup": {...}, "valuers": {name: {metric: Estimate.to_dict()}}}

They take uint8 (N, H, W) images with int labels in [0, C) and the valuers to compare.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gmvaluator import search as ix
from gmvaluator.errors import InputError
from gmvaluator.evaluate import criteria, stats
from gmvaluator.evaluate.data import inject
from gmvaluator.evaluate.generators.reference import check_family, reference_loss, train_reference
from gmvaluator.evaluate.valuers import ValuerSpec, embed_images, value_images

Samples = dict[str, dict[str, list[float]]]


def _summarise(samples: Samples) -> dict[str, dict[str, Any]]:
    return {
        name: {metric: stats.estimate(vals).to_dict() for metric, vals in metrics.items()}
        for name, metrics in samples.items()
    }


def _generate(model: Any, n_classes: int, per_class: int, seed: int) -> tuple[Any, Any]:
    gen_labels = np.repeat(np.arange(n_classes), per_class)
    return model.sample(gen_labels, seed=seed), gen_labels


def _repeats(seeds: Iterable[int], draws: int) -> list[tuple[int, int]]:
    return [(s, d) for s in seeds for d in range(draws)]


def _half_models(
    images: np.ndarray,
    labels: np.ndarray,
    seeds: Iterable[int],
    family: str,
    n_classes: int,
    epochs: int | None,
) -> Iterable[tuple[int, np.ndarray, Any]]:
    """Per seed: (seed, bool mask of a random half, a generator trained on that half)."""
    for seed in seeds:
        rng = np.random.default_rng(seed)
        member = np.zeros(len(images), dtype=bool)
        member[rng.choice(len(images), len(images) // 2, replace=False)] = True
        model = train_reference(
            family, images[member], labels[member], n_classes=n_classes, seed=seed, epochs=epochs
        )
        yield seed, member, model


def _check_common(
    images: np.ndarray,
    labels: np.ndarray,
    seeds: Sequence[int],
    draws: int,
    family: str = "cvae",
    needs_loss: bool = False,
) -> int:
    check_family(family, needs_loss)
    if len(seeds) < 1 or draws < 1:
        raise InputError("give at least one seed and one draw of the generated set.")
    if len(images) != len(labels):
        raise InputError(f"{len(images)} images but {len(labels)} labels; give one label each.")
    return int(np.max(labels)) + 1


def run_identical(
    images: np.ndarray,
    labels: np.ndarray,
    valuers: Sequence[ValuerSpec],
    *,
    attribute: np.ndarray | None = None,
    ks: Sequence[int] = (10, 30, 50, 100),
    family: str = "cvae",
    seeds: Sequence[int] = (0, 1),
    draws: int = 2,
    per_class: int = 20,
    epochs: int | None = None,
) -> dict[str, Any]:
    """C1 (``attribute`` None: the class) or C2 (a per-training-item attribute column).

    A generated sample's attribute is the most common attribute among training items of the
    class it was generated for (exact when the attribute is a grouping of classes).
    """
    n_classes = _check_common(images, labels, seeds, draws, family)
    attr = labels if attribute is None else np.asarray(attribute)
    if len(attr) != len(labels):
        raise InputError(f"{len(attr)} attributes for {len(labels)} training items; give one each.")
    class_attr = np.array([_mode(attr[labels == c]) for c in range(n_classes)])
    samples: Samples = defaultdict(lambda: defaultdict(list))
    for seed in seeds:
        model = train_reference(
            family, images, labels, n_classes=n_classes, seed=seed, epochs=epochs
        )
        for draw in range(draws):
            gen, gen_labels = _generate(model, n_classes, per_class, 1000 * seed + draw)
            for spec in valuers:
                res = _value(spec, images, gen, max(ks), seed * 100 + draw, model, labels,
                             gen_labels)  # fmt: skip
                shares = criteria.share_at_ks(res.indices, attr, class_attr[gen_labels], ks)
                for k, v in shares.items():
                    samples[spec.name][f"k={k}"].append(v)
    setup = _setup(images, family, seeds, draws, per_class, epochs, ks=list(ks))
    name = "c1" if attribute is None else "c2"
    setup["valuer_specs"] = [spec.to_dict() for spec in valuers]
    return {"criterion": name, "setup": setup, "valuers": _summarise(samples)}


def _value(
    spec: ValuerSpec,
    images: np.ndarray,
    gen: np.ndarray,
    k: int,
    seed: int,
    model: Any,
    labels: np.ndarray,
    gen_labels: np.ndarray,
) -> Any:
    """``value_images`` with the generator and both sides' labels for a model-aware spec."""
    if spec.rescore is None:
        return value_images(spec, images, gen, k, seed=seed)
    return value_images(spec, images, gen, k, seed=seed, model=model, train_labels=labels,
                        generated_labels=gen_labels)  # fmt: skip


def _lds_entry(
    tau: np.ndarray, subsets: np.ndarray, outputs: np.ndarray, seed: int
) -> dict[str, Any]:
    per_sample = criteria.lds(tau, subsets, outputs)
    ok = per_sample[np.isfinite(per_sample)]
    return {
        "lds": stats.bootstrap(ok, seed=seed).to_dict(),
        "defined_share": float(len(ok) / len(per_sample)),
    }


def _mode(values: np.ndarray) -> Any:
    uniq, counts = np.unique(values, return_counts=True)
    return uniq[np.argmax(counts)] if len(uniq) else None


def _setup(
    images: np.ndarray,
    family: str,
    seeds: Any,
    draws: int,
    per_class: int,
    epochs: int | None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "n_train": len(images),
        "image_shape": list(images.shape[1:]),
        "generator": family,
        "epochs": epochs,
        "seeds": list(seeds),
        "draws": draws,
        "per_class": per_class,
        **extra,
    }


def run_ood(
    images: np.ndarray,
    labels: np.ndarray,
    valuers: Sequence[ValuerSpec],
    *,
    n_noise: int = 50,
    n_photos: int = 50,
    k: int = 10,
    family: str = "cvae",
    seeds: Sequence[int] = (0, 1),
    draws: int = 2,
    per_class: int = 20,
    epochs: int | None = None,
) -> dict[str, Any]:
    """C3: inject noise images and photo crops, train on the mix, score "low value = injected"."""
    n_classes = _check_common(images, labels, seeds, draws, family)
    samples: Samples = defaultdict(lambda: defaultdict(list))
    for seed in seeds:
        x, y, mask = inject(images, labels, n_noise, n_photos, seed=seed)
        model = train_reference(family, x, y, n_classes=n_classes, seed=seed, epochs=epochs)
        for draw in range(draws):
            gen, gen_labels = _generate(model, n_classes, per_class, 1000 * seed + draw)
            for spec in valuers:
                res = _value(spec, x, gen, k, seed * 100 + draw, model, y, gen_labels)
                for metric, v in criteria.ood_scores(res.rank_scores(), mask).items():
                    samples[spec.name][metric].append(v)
                samples[spec.name]["injected_matched_share"].append(
                    float((res.n_matches[mask] > 0).mean())
                )
    setup = _setup(
        images, family, seeds, draws, per_class, epochs, k=k, n_noise=n_noise, n_photos=n_photos
    )
    setup["valuer_specs"] = [spec.to_dict() for spec in valuers]
    return {"criterion": "c3", "setup": setup, "valuers": _summarise(samples)}


def run_membership(
    images: np.ndarray,
    labels: np.ndarray,
    valuers: Sequence[ValuerSpec],
    *,
    k: int = 10,
    family: str = "cvae",
    seeds: Sequence[int] = (0, 1),
    draws: int = 2,
    per_class: int = 20,
    epochs: int | None = None,
) -> dict[str, Any]:
    """Train on a random half; are members valued above the held-out half (AUROC, p)?"""
    n_classes = _check_common(images, labels, seeds, draws, family)
    samples: Samples = defaultdict(lambda: defaultdict(list))
    for seed, member, model in _half_models(images, labels, seeds, family, n_classes, epochs):
        for draw in range(draws):
            gen, gen_labels = _generate(model, n_classes, per_class, 1000 * seed + draw)
            for spec in valuers:
                res = _value(spec, images, gen, k, seed * 100 + draw, model, labels, gen_labels)
                for metric, v in criteria.membership_scores(res.values, member).items():
                    samples[spec.name][metric].append(v)
    setup = _setup(images, family, seeds, draws, per_class, epochs, k=k)
    setup["valuer_specs"] = [spec.to_dict() for spec in valuers]
    return {"criterion": "membership", "setup": setup, "valuers": _summarise(samples)}


def run_deletion(
    images: np.ndarray,
    labels: np.ndarray,
    valuer: ValuerSpec,
    *,
    fraction: float = 0.1,
    k: int = 10,
    family: str = "cvae",
    seeds: Sequence[int] = (0, 1),
    draws: int = 1,
    per_class: int = 20,
    epochs: int | None = None,
    feature_embedders: Sequence[str] = ("pixels",),
) -> dict[str, Any]:
    """Retrain without (deletion) or only on (insertion) the top, bottom or random ``fraction``.

    Reports the change of the generator's mean loss on the generated set it was valued against
    (positive = the retrained model explains it worse) and, as ``fid:<embedder>``, the Fréchet
    distance between that set and the retrained model's samples for the same labels, in the
    feature space of each of ``feature_embedders`` (e.g. ``pixels``, ``efficientnet-lite0``).
    """
    n_classes = _check_common(images, labels, seeds, draws, family, needs_loss=True)
    if not feature_embedders:
        raise InputError("give at least one feature embedder for the FID, e.g. pixels.")
    samples: Samples = defaultdict(lambda: defaultdict(list))
    for seed in seeds:
        full = train_reference(
            family, images, labels, n_classes=n_classes, seed=seed, epochs=epochs
        )
        for draw in range(draws):
            gen_seed = 1000 * seed + draw
            gen, gen_labels = _generate(full, n_classes, per_class, gen_seed)
            base_loss = float(reference_loss(full, gen, gen_labels).mean())
            res = _value(valuer, images, gen, k, seed * 100 + draw, full, labels, gen_labels)
            sets = criteria.split_by_value(res.values, fraction, seed=gen_seed)
            for arm, rows in sets.items():
                keep = np.ones(len(images), bool)
                keep[rows] = False
                for mode, mask in (("deletion", keep), ("insertion", ~keep)):
                    model = train_reference(
                        family,
                        images[mask],
                        labels[mask],
                        n_classes=n_classes,
                        seed=seed,
                        epochs=epochs,
                    )
                    loss = float(reference_loss(model, gen, gen_labels).mean())
                    regen = model.sample(gen_labels, seed=gen_seed)
                    samples[f"{mode}:{arm}"]["loss_change"].append(loss - base_loss)
                    for space in feature_embedders:
                        samples[f"{mode}:{arm}"][f"fid:{space}"].append(_fid(gen, regen, space))
    setup = _setup(
        images,
        family,
        seeds,
        draws,
        per_class,
        epochs,
        k=k,
        fraction=fraction,
        valuer=valuer.to_dict(),
        feature_spaces=list(feature_embedders),
    )
    return {"criterion": "deletion", "setup": setup, "valuers": _summarise(samples)}


def fid(a: np.ndarray, b: np.ndarray, embedder: str = "pixels") -> float:
    """FID between two uint8 image sets in ``embedder`` feature space (embeddings cached)."""
    return _fid(a, b, embedder)


def _fid(a: np.ndarray, b: np.ndarray, embedder: str) -> float:
    fa, _ = embed_images(a, embedder)
    fb, _ = embed_images(b, embedder)
    return stats.frechet_distance(fa, fb)


def run_lds(
    images: np.ndarray,
    labels: np.ndarray,
    valuers: Sequence[ValuerSpec],
    *,
    n_models: int = 32,
    k: int = 10,
    family: str = "cvae",
    seed: int = 0,
    per_class: int = 10,
    epochs: int | None = None,
    peers: Mapping[str, Callable[..., np.ndarray]] | None = None,
    models: LdsSetup | None = None,
) -> dict[str, Any]:
    """LDS: ``n_models`` generators on random halves of exactly equal size.

    The generated set comes from a model trained on all the data; each valuer's credits on the
    full training set are the attributions (a model-aware valuer's signed scores, and its
    credits as ``lds_credit``). Outputs are minus each model's loss. The interval is a
    bootstrap over generated samples. ``peers`` are other attributors measured in the same run,
    by name: ``attribute(model, images, labels, gen, gen_labels, subsets, outputs)`` returns
    an (m, n) matrix (it may tune itself on the run, as a tuned baseline does). ``models``: the
    retrained models of an earlier ``lds_setup`` with the same arguments, to measure more
    valuers against them without retraining.
    """
    trained = models or lds_setup(
        images, labels, n_models=n_models, family=family, seed=seed, per_class=per_class,
        epochs=epochs,
    )  # fmt: skip
    full, gen, gen_labels = trained.full, trained.generated, trained.generated_labels
    subsets, outputs, retrain_s = trained.subsets, trained.outputs, trained.retrain_seconds
    half = len(images) // 2
    out: dict[str, dict[str, Any]] = {}
    for spec in valuers:
        res = _value(spec, images, gen, k, seed, full, labels, gen_labels)
        out[spec.name] = _lds_entry(criteria.attribution_matrix(res), subsets, outputs, seed)
        if res.scores is not None:  # the credits the signed scores become
            credit = criteria.attribution_matrix(res, signed=False)
            out[spec.name]["lds_credit"] = _lds_entry(credit, subsets, outputs, seed)["lds"]
    for name, attribute in (peers or {}).items():
        out[name] = _lds_entry(attribute(full, images, labels, gen, gen_labels, subsets,
                                         outputs), subsets, outputs, seed)  # fmt: skip
    setup = _setup(
        images,
        family,
        [seed],
        1,
        per_class,
        epochs,
        k=k,
        n_models=n_models,
        half_size=half,
        retrain_seconds=retrain_s,
    )
    setup["valuer_specs"] = [spec.to_dict() for spec in valuers]
    return {"criterion": "lds", "setup": setup, "valuers": out}


@dataclass(frozen=True)
class LdsSetup:
    """What LDS measures valuers against: the generator trained on all the data, its generated
    samples, the R random halves and each half-model's output (minus its loss) on them."""

    full: Any
    generated: np.ndarray
    generated_labels: np.ndarray
    subsets: np.ndarray
    outputs: np.ndarray
    retrain_seconds: float


def lds_setup(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    n_models: int = 32,
    family: str = "cvae",
    seed: int = 0,
    per_class: int = 10,
    epochs: int | None = None,
) -> LdsSetup:
    """Train the generator on all the data and ``n_models`` generators on random halves of
    exactly equal size; seeded, so the same arguments give the same setup."""
    n_classes = _check_common(images, labels, [seed], 1, family, needs_loss=True)
    if n_models < 2:
        raise InputError(f"n_models={n_models}: LDS needs at least 2 retrained models.")
    full = train_reference(family, images, labels, n_classes=n_classes, seed=seed, epochs=epochs)
    gen, gen_labels = _generate(full, n_classes, per_class, 1000 * seed)
    rng = np.random.default_rng(seed)
    half = len(images) // 2
    subsets = np.zeros((n_models, len(images)), dtype=bool)
    outputs = np.empty((n_models, len(gen)))
    t0 = time.perf_counter()
    for r in range(n_models):
        subsets[r, rng.choice(len(images), half, replace=False)] = True
        model = train_reference(family, images[subsets[r]], labels[subsets[r]],
                                n_classes=n_classes, seed=seed, epochs=epochs)  # fmt: skip
        outputs[r] = -reference_loss(model, gen, gen_labels)
    return LdsSetup(full, gen, gen_labels, subsets, outputs, time.perf_counter() - t0)


def run_efficiency(
    images: np.ndarray,
    generated: np.ndarray,
    valuers: Sequence[ValuerSpec],
    *,
    k: int = 10,
) -> dict[str, Any]:
    """C4: seconds per stage, for the whole run and per generated sample (embeddings uncached)."""
    from gmvaluator.evaluate.valuers import clear_cache

    out: dict[str, dict[str, Any]] = {}
    for spec in valuers:
        clear_cache()
        t0 = time.perf_counter()
        res = value_images(spec, images, generated, k)
        total = time.perf_counter() - t0
        stages = {**res.timings, "total_s": total}
        out[spec.name] = {
            "seconds": stages,
            "per_generated_sample_s": {key: v / len(generated) for key, v in stages.items()},
        }
    setup = {
        "n_train": len(images),
        "n_generated": len(generated),
        "k": k,
        "valuer_specs": [spec.to_dict() for spec in valuers],
    }
    return {"criterion": "c4", "setup": setup, "valuers": out}


def run_sensitivity(
    images: np.ndarray,
    labels: np.ndarray,
    variants: Sequence[ValuerSpec],
    *,
    ks: Sequence[int] = (1, 5, 10, 30, 50, 100),
    family: str = "cvae",
    seeds: Sequence[int] = (0, 1),
    draws: int = 2,
    per_class: int = 20,
    epochs: int | None = None,
) -> dict[str, Any]:
    """C1 and membership at each k in ``ks`` for each valuer variant (index, re-rank, embedder).

    The generator trains on a random half, as in ``run_membership``; C1 is the class share of
    each generated sample's top-k over the whole training set, membership the AUROC and
    Mann–Whitney p of member vs non-member values. Each variant values the generated set once
    with k = max(ks): a smaller k is the prefix of those lists (the top k' of a top-k list),
    with credit recomputed over the prefix. ``recall@k`` is the share of the exact top k found,
    against the variant named ``exact:<embedder>`` with the same embedder when there is one.
    """
    n_classes = _check_common(images, labels, seeds, draws, family)
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise InputError(f"ks {list(ks)} must list integers >= 1.")
    names = [spec.name for spec in variants]
    if len(set(names)) != len(names):
        raise InputError(f"variant names {names} repeat; give each variant its own name.")
    samples: Samples = defaultdict(lambda: defaultdict(list))
    resolved: dict[str, dict[str, Any]] = {}
    for seed, member, model in _half_models(images, labels, seeds, family, n_classes, epochs):
        for draw in range(draws):
            gen, gen_labels = _generate(model, n_classes, per_class, 1000 * seed + draw)
            results = {
                spec.name: value_images(spec, images, gen, ks[-1], seed=seed * 100 + draw)
                for spec in variants
            }
            for spec in variants:
                res = results[spec.name]
                resolved.setdefault(spec.name, _resolved(spec, res))
                exact = results.get(f"exact:{spec.embedder}")
                for k in ks:
                    _score_prefix(samples[spec.name], res, spec, k, labels, gen_labels, member)
                    if exact is not None and exact is not res and not spec.random:
                        hit = ix.recall_at_k(res.indices[:, :k], exact.indices[:, :k])
                        samples[spec.name][f"recall@k={k}"].append(hit)
    setup = _setup(images, family, seeds, draws, per_class, epochs, ks=ks)
    setup["variants"] = resolved
    return {"criterion": "sensitivity", "setup": setup, "valuers": _summarise(samples)}


def _score_prefix(
    out: dict[str, list[float]],
    res: Any,
    spec: ValuerSpec,
    k: int,
    labels: np.ndarray,
    gen_labels: np.ndarray,
    member: np.ndarray,
) -> None:
    out[f"c1@k={k}"].append(
        float(criteria.identical_share(res.indices, labels, gen_labels, k).mean())
    )
    values = criteria.values_at_k(res, k)
    scores = criteria.membership_scores(values, member)
    out[f"auroc@k={k}"].append(scores["auroc"])
    out[f"p_value@k={k}"].append(scores["p_value"])


def _resolved(spec: ValuerSpec, res: Any) -> dict[str, Any]:
    """What a variant actually ran: its spec and the index the valuator built."""
    index = res.config.get("index", {})
    keep = ("kind", "factory", "m", "nbits", "nlist", "nprobe", "n_candidates")
    resolved = {key: index.get(key) for key in keep}
    if spec.rerank == "none" and resolved["n_candidates"] is not None:
        resolved["n_candidates"] = res.k  # the index's own top k: nothing is re-ranked
    return {"spec": spec.to_dict(), "index": resolved}
