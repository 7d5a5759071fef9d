"""``gmvaluator evaluate``: the evaluation criteria, one subcommand each.

Each trains its reference generator(s) on a labelled image source, values the training set
with the default pipeline and its baselines, and writes ``OUT/eval/<criterion>.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from gmvaluator.cli.common import EMBEDDERS, handle_errors, setting_option

app = typer.Typer(
    name="evaluate",
    help="Measure how far the values can be trusted (the paper's C1-C4 and more).",
    no_args_is_help=True,
)

Train = Annotated[
    str,
    typer.Option(
        help="Labelled image source, e.g. builtin:digits or builtin:fashion-mnist[:5000]."
    ),
]
EvalRun = Annotated[
    Path | None,
    typer.Argument(
        metavar="RUN",
        help="Run folder; results go to RUN/eval/. Required.",
        show_default=False,
    ),
]
# The older spelling of RUN, kept working but out of the help.
EvalOut = Annotated[Path | None, typer.Option("--out", hidden=True)]
# Several k: the same --k as every other command, as a comma-separated list; --ks is the older
# spelling, kept working but out of the help.
KsAlias = Annotated[str | None, typer.Option("--ks", hidden=True)]
Generator = Annotated[
    str, typer.Option(help="Reference generator family: cvae, gmm, gan or diffusion.")
]
Seeds = Annotated[int, typer.Option(help="Generator seeds (0..N-1).")]
Draws = Annotated[int, typer.Option(help="Draws of the generated set per seed.")]
PerClass = Annotated[int, typer.Option(help="Generated samples per class per draw.")]
Epochs = Annotated[int | None, typer.Option(help="Generator epochs (default: by data size).")]
EmbedderOpt = Annotated[
    str, typer.Option("--embedder", help=f"Embedder of the default pipeline: {EMBEDDERS}.")
]
Baselines = Annotated[
    bool,
    typer.Option(
        help="Also run the baselines (random, exact NN, raw pixels, quality, re-rank off, T)."
    ),
]
KOpt = Annotated[int, setting_option("k", "--k", own_default=True)]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace an existing result file.")]


ModelAware = Annotated[
    bool,
    typer.Option(
        help="Also run the model-aware valuer: the shortlist re-scored by the generator's "
        "gradients (needs a family with a loss: cvae, gmm excluded, diffusion)."
    ),
]
ModelOutput = Annotated[
    str,
    typer.Option(help="Model-aware: the output function differentiated on generated samples."),
]


def _valuers(
    embedder: str, with_baselines: bool, model_aware: bool = False, output: str = "loss"
) -> list[Any]:
    from gmvaluator.evaluate import ValuerSpec, baselines

    specs = baselines(embedder) if with_baselines else [ValuerSpec("default", embedder=embedder)]
    return specs + [_model_aware(embedder, output)] * model_aware


def _model_aware(embedder: str, output: str) -> Any:
    from gmvaluator.evaluate import ValuerSpec
    from gmvaluator.modelaware.rescore import RescoreSettings

    return ValuerSpec("model-aware", embedder=embedder, rescore=RescoreSettings(output=output))


def _peers(names: str) -> Any:
    """The published attributors named by ``--peers`` (none: no peers)."""
    if names == "none":
        return None
    from gmvaluator.evaluate.peers import lds_peers

    return lds_peers(_names(names, "--peers"))


def _target(run: Path | None, out: Path | None, criterion: str, overwrite: bool) -> Path:
    """RUN/eval/<criterion>.json, checked not to exist (unless ``overwrite``)."""
    from gmvaluator.errors import InputError
    from gmvaluator.run.folder import RunFolder

    if run is not None and out is not None and run != out:
        raise InputError(f"RUN {run} and --out {out} name two folders. Give one of them.")
    folder = run if run is not None else out
    if folder is None:
        raise InputError(f"evaluate {criterion} needs RUN, the folder to write results to.")
    path = RunFolder(folder).evaluation(criterion)
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; use another RUN folder or pass --overwrite.")
    return path


def _write(path: Path, result: dict[str, Any], train: str) -> None:
    from gmvaluator.files import write_json

    result["setup"]["train"] = train
    write_json(path, result)
    typer.echo(f"wrote {path}")
    for name, metrics in result["valuers"].items():
        parts = []
        for metric, est in metrics.items():
            if isinstance(est, dict) and "mean" in est:
                lo, hi = est["ci95"]
                parts.append(f"{metric} {est['mean']:.3f} [{lo:.3f}, {hi:.3f}]")
        typer.echo(f"  {name}: " + "; ".join(parts))


def _data(train: str) -> tuple[Any, Any]:
    from gmvaluator.evaluate.data import load_images

    return load_images(train)


@app.command("c1")
@handle_errors
def c1(
    run: EvalRun = None,
    out: EvalOut = None,
    train: Train = "builtin:digits",
    k: Annotated[str, typer.Option("--k", help="Comma-separated k values.")] = "10,30,50,100",
    ks: KsAlias = None,
    generator: Generator = "cvae",
    seeds: Seeds = 2,
    draws: Draws = 2,
    per_class: PerClass = 20,
    epochs: Epochs = None,
    embedder: EmbedderOpt = "pixels",
    baselines: Baselines = True,
    model_aware: ModelAware = False,
    model_output: ModelOutput = "loss",
    overwrite: OverwriteOpt = False,
) -> None:
    """C1: share of each generated sample's top-k contributors with its class."""
    from gmvaluator.evaluate.experiments import run_identical

    path = _target(run, out, "c1", overwrite)
    x, y = _data(train)
    res = run_identical(
        x,
        y,
        _valuers(embedder, baselines, model_aware, model_output),
        ks=_ks(ks or k),
        family=generator,
        seeds=range(seeds),
        draws=draws,
        per_class=per_class,
        epochs=epochs,
    )
    _write(path, res, train)


@app.command("c2")
@handle_errors
def c2(
    run: EvalRun = None,
    out: EvalOut = None,
    train: Train = "builtin:digits",
    k: Annotated[str, typer.Option("--k", help="Comma-separated k values.")] = "5,10,15",
    ks: KsAlias = None,
    generator: Generator = "cvae",
    seeds: Seeds = 2,
    draws: Draws = 2,
    per_class: PerClass = 20,
    epochs: Epochs = None,
    embedder: EmbedderOpt = "pixels",
    baselines: Baselines = True,
    overwrite: OverwriteOpt = False,
) -> None:
    """C2: the same share for an attribute grouping of the classes (e.g. footwear / tops)."""
    from gmvaluator.evaluate import group_labels
    from gmvaluator.evaluate.data import groups_for
    from gmvaluator.evaluate.experiments import run_identical

    path = _target(run, out, "c2", overwrite)
    x, y = _data(train)
    groups = groups_for(train)
    res = run_identical(
        x,
        y,
        _valuers(embedder, baselines),
        attribute=group_labels(y, groups),
        ks=_ks(ks or k),
        family=generator,
        seeds=range(seeds),
        draws=draws,
        per_class=per_class,
        epochs=epochs,
    )
    res["setup"]["groups"] = {name: list(members) for name, members in groups.items()}
    _write(path, res, train)


@app.command("c3")
@handle_errors
def c3(
    run: EvalRun = None,
    out: EvalOut = None,
    train: Train = "builtin:digits",
    n_noise: Annotated[int, typer.Option(help="Gaussian-noise images injected.")] = 50,
    n_photos: Annotated[int, typer.Option(help="Photo crops (scikit-image) injected.")] = 50,
    k: KOpt = 10,
    generator: Generator = "cvae",
    seeds: Seeds = 2,
    draws: Draws = 2,
    per_class: PerClass = 20,
    epochs: Epochs = None,
    embedder: EmbedderOpt = "pixels",
    baselines: Baselines = True,
    overwrite: OverwriteOpt = False,
) -> None:
    """C3: inject outliers, train on the mix; AUROC / AUPRC / precision of "low value"."""
    from gmvaluator.evaluate.experiments import run_ood

    path = _target(run, out, "c3", overwrite)
    x, y = _data(train)
    res = run_ood(
        x,
        y,
        _valuers(embedder, baselines),
        n_noise=n_noise,
        n_photos=n_photos,
        k=k,
        family=generator,
        seeds=range(seeds),
        draws=draws,
        per_class=per_class,
        epochs=epochs,
    )
    _write(path, res, train)


@app.command("membership")
@handle_errors
def membership(
    run: EvalRun = None,
    out: EvalOut = None,
    train: Train = "builtin:digits",
    k: KOpt = 10,
    generator: Generator = "cvae",
    seeds: Seeds = 2,
    draws: Draws = 2,
    per_class: PerClass = 20,
    epochs: Epochs = None,
    embedder: EmbedderOpt = "pixels",
    baselines: Baselines = True,
    model_aware: ModelAware = False,
    model_output: ModelOutput = "loss",
    overwrite: OverwriteOpt = False,
) -> None:
    """Train on half the data: AUROC and Mann-Whitney p of member vs non-member values."""
    from gmvaluator.evaluate.experiments import run_membership

    path = _target(run, out, "membership", overwrite)
    x, y = _data(train)
    res = run_membership(
        x,
        y,
        _valuers(embedder, baselines, model_aware, model_output),
        k=k,
        family=generator,
        seeds=range(seeds),
        draws=draws,
        per_class=per_class,
        epochs=epochs,
    )
    _write(path, res, train)


@app.command("deletion")
@handle_errors
def deletion(
    run: EvalRun = None,
    out: EvalOut = None,
    train: Train = "builtin:digits",
    fraction: Annotated[float, typer.Option(help="Share of items removed or kept.")] = 0.1,
    k: KOpt = 10,
    generator: Generator = "cvae",
    seeds: Seeds = 2,
    draws: Draws = 1,
    per_class: PerClass = 20,
    epochs: Epochs = None,
    embedder: EmbedderOpt = "pixels",
    fid_embedder: Annotated[
        str,
        typer.Option(
            help="Feature spaces of the FID, comma-separated, e.g. pixels,efficientnet-lite0."
        ),
    ] = "pixels",
    model_aware: Annotated[
        bool, typer.Option(help="Split by the model-aware valuer's values instead.")
    ] = False,
    model_output: ModelOutput = "loss",
    overwrite: OverwriteOpt = False,
) -> None:
    """Retrain without / only on the top, bottom and random fraction; loss change and FID."""
    from gmvaluator.evaluate import ValuerSpec
    from gmvaluator.evaluate.experiments import run_deletion

    path = _target(run, out, "deletion", overwrite)
    x, y = _data(train)
    res = run_deletion(
        x,
        y,
        _model_aware(embedder, model_output)
        if model_aware
        else ValuerSpec("default", embedder=embedder),
        fraction=fraction,
        k=k,
        family=generator,
        seeds=range(seeds),
        draws=draws,
        per_class=per_class,
        epochs=epochs,
        feature_embedders=_names(fid_embedder, "--fid-embedder"),
    )
    _write(path, res, train)


@app.command("lds")
@handle_errors
def lds(
    run: EvalRun = None,
    out: EvalOut = None,
    train: Train = "builtin:digits",
    models: Annotated[int, typer.Option(help="Models trained on random halves (R).")] = 32,
    k: KOpt = 10,
    generator: Generator = "cvae",
    seed: Annotated[int, typer.Option(help="Seed of the split and the generators.")] = 0,
    per_class: PerClass = 10,
    epochs: Epochs = None,
    embedder: EmbedderOpt = "pixels",
    baselines: Baselines = True,
    model_aware: ModelAware = False,
    model_output: ModelOutput = "loss",
    peers: Annotated[
        str,
        typer.Option(
            help="Published attributors measured in the same run, comma-separated: "
            "dattri-trak, dattri-trak-tuned, dattri-tracin, dattri-grad-dot (pip install "
            "dattri), or none."
        ),
    ] = "none",
    overwrite: OverwriteOpt = False,
) -> None:
    """LDS: Spearman correlation of retrained models' fit with the attribution of their half."""
    from gmvaluator.evaluate.experiments import run_lds

    path = _target(run, out, "lds", overwrite)
    x, y = _data(train)
    res = run_lds(
        x,
        y,
        _valuers(embedder, baselines, model_aware, model_output),
        peers=_peers(peers),
        n_models=models,
        k=k,
        family=generator,
        seed=seed,
        per_class=per_class,
        epochs=epochs,
    )
    _write(path, res, train)


@app.command("sensitivity")
@handle_errors
def sensitivity(
    run: EvalRun = None,
    out: EvalOut = None,
    train: Train = "builtin:digits",
    k: Annotated[str, typer.Option("--k", help="Comma-separated k values.")] = "1,5,10,30,50,100",
    ks: KsAlias = None,
    embedders: Annotated[
        str,
        typer.Option(
            help="Comma-separated embedders; PQ settings and re-rank vary on the first one."
        ),
    ] = "pixels",
    generator: Generator = "cvae",
    seeds: Seeds = 2,
    draws: Draws = 2,
    per_class: PerClass = 20,
    epochs: Epochs = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """C1 and membership as k, the PQ settings, re-rank and the embedder vary."""
    from gmvaluator.evaluate import sensitivity_variants
    from gmvaluator.evaluate.experiments import run_sensitivity

    path = _target(run, out, "sensitivity", overwrite)
    variants = sensitivity_variants(_names(embedders, "--embedders"))
    x, y = _data(train)
    res = run_sensitivity(
        x,
        y,
        variants,
        ks=_ks(ks or k),
        family=generator,
        seeds=range(seeds),
        draws=draws,
        per_class=per_class,
        epochs=epochs,
    )
    _write(path, res, train)


@app.command("c4")
@handle_errors
def c4(
    run: EvalRun = None,
    out: EvalOut = None,
    train: Train = "builtin:digits",
    k: KOpt = 10,
    generator: Generator = "cvae",
    per_class: PerClass = 20,
    epochs: Epochs = None,
    embedder: EmbedderOpt = "pixels",
    baselines: Baselines = True,
    overwrite: OverwriteOpt = False,
) -> None:
    """C4: seconds per stage, in total and per generated sample."""
    import numpy as np

    from gmvaluator.evaluate.experiments import run_efficiency
    from gmvaluator.evaluate.generators.reference import train_reference

    path = _target(run, out, "c4", overwrite)
    x, y = _data(train)
    n_classes = int(y.max()) + 1
    model = train_reference(generator, x, y, n_classes=n_classes, epochs=epochs)
    gen = model.sample(np.repeat(np.arange(n_classes), per_class), seed=0)
    res = run_efficiency(x, gen, _valuers(embedder, baselines), k=k)
    res["setup"]["train"] = train
    from gmvaluator.files import write_json

    write_json(path, res)
    typer.echo(f"wrote {path}")
    for name, v in res["valuers"].items():
        per = v["per_generated_sample_s"]["total_s"]
        typer.echo(f"  {name}: {v['seconds']['total_s']:.2f} s total, {1000 * per:.2f} ms/sample")


def _ks(text: str) -> list[int]:
    from gmvaluator.errors import InputError

    try:
        ks = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise InputError(f"--k {text!r} must be comma-separated integers, e.g. 10,30,50.") from None
    if not ks or ks[0] < 1:
        raise InputError(f"--k {text!r} must list integers >= 1, e.g. 10,30,50.")
    return ks


def _names(text: str, option: str) -> list[str]:
    from gmvaluator.errors import InputError

    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise InputError(f"{option} {text!r} must name at least one embedder, e.g. pixels.")
    return names


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="evaluate")
