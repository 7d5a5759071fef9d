"""LDS of the model-aware valuer beside the training-free default and the published peers
(dattri's TRAK at its defaults and with its ridge tuned on the same run, TracIn), on
independent replicates: the same retrained models and generated samples for every valuer.

    OMP_NUM_THREADS=1 python bench/model_aware_lds.py [--family cvae|diffusion]
        [--data builtin:digits] [--subset N] [--seeds 0,1,2] [--outputs loss] [--peers ...]

Writes ``bench/results/model_aware_lds_<data>_<family>.json`` and prints one line per
replicate and valuer. The model-aware settings are RescoreSettings' defaults (chosen on the
digits with the VAE) except the output function, which ``--outputs`` lists (one valuer each).
Two ablations use the same gradient features: ``trak-all-items`` scores every training item
(TRAK with this project's features and ridge), ``shortlist-no-label`` the K' nearest items
whatever their label.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator.evaluate import ValuerSpec
from gmvaluator.evaluate import experiments as ex
from gmvaluator.evaluate.data import load_images
from gmvaluator.files import write_json
from gmvaluator.modelaware.rescore import RescoreSettings

#: Other model-aware settings a run can add (``--variants``), by name.
VARIANTS: dict[str, dict[str, Any]] = {
    "ridge10": {"ridge": 10.0},
    "ridge1000": {"ridge": 1000.0},
    "shortlist50": {"candidates": 50},
    "output-draws128": {"output_draws": 128},
    "square-both": {"output": "square", "train_output": "square"},
    "draws32": {"draws": 32},
}


def trained(a: argparse.Namespace, x: np.ndarray, y: np.ndarray, seed: int) -> ex.LdsSetup:
    """The retrained models of one replicate, kept in ``--setup-cache`` when given (the same
    arguments give the same models: ``lds_setup`` is seeded)."""
    if not a.setup_cache:
        return ex.lds_setup(x, y, n_models=a.models, family=a.family, seed=seed)
    from gmvaluator.evaluate.generators.reference import load_reference

    folder = Path(a.setup_cache) / f"{a.data.split(':')[-1]}{a.subset or ''}_{a.family}_{seed}"
    if (folder / "setup.npz").is_file():
        d = np.load(folder / "setup.npz")
        return ex.LdsSetup(load_reference(folder / "full"), d["generated"], d["labels"],
                           d["subsets"], d["outputs"], float(d["seconds"]))  # fmt: skip
    setup = ex.lds_setup(x, y, n_models=a.models, family=a.family, seed=seed)
    setup.full.save(folder / "full", overwrite=True)
    arrays = {"generated": setup.generated, "labels": setup.generated_labels,
              "subsets": setup.subsets, "outputs": setup.outputs}  # fmt: skip
    np.savez(folder / "setup.npz", seconds=setup.retrain_seconds, **arrays)
    return setup


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--family", default="cvae")
    p.add_argument("--data", default="builtin:digits")
    p.add_argument("--subset", type=int, default=0, help="a seeded subset of N items")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--outputs", default="loss")
    p.add_argument("--peers", default="dattri-trak,dattri-trak-tuned,dattri-tracin")
    p.add_argument("--models", type=int, default=32)
    p.add_argument("--variants", default="", help=f"comma-separated, of {sorted(VARIANTS)}")
    p.add_argument("--setup-cache", default="", help="folder keeping the retrained models")
    p.add_argument("--tag", default="", help="suffix of the results file")
    p.add_argument("--ablations", type=int, default=1, help="also run trak-all-items and "
                   "shortlist-no-label (1) or not (0)")  # fmt: skip
    a = p.parse_args()
    x, y = load_images(a.data)
    if a.subset:
        rows = np.sort(np.random.default_rng(123).choice(len(x), a.subset, replace=False))
        x, y = x[rows], y[rows]
    specs = [ValuerSpec("default")]
    for out in a.outputs.split(","):
        name = "model-aware" if out == "loss" else f"model-aware:{out}"
        specs.append(ValuerSpec(name, rescore=RescoreSettings(output=out)))
    for name in filter(None, a.variants.split(",")):
        specs.append(ValuerSpec(f"model-aware[{name}]", rescore=RescoreSettings(**VARIANTS[name])))
    if a.ablations:  # the same features: every training item, or the shortlist without labels
        specs.append(ValuerSpec("trak-all-items", rescore=RescoreSettings(
            candidates=len(x), by_label=False)))  # fmt: skip
        specs.append(ValuerSpec("shortlist-no-label", rescore=RescoreSettings(by_label=False)))
    peers: dict[str, Any] = {}
    if a.peers != "none":
        from gmvaluator.evaluate.peers import lds_peers

        peers = lds_peers(a.peers.split(","))
    rows_out = []
    for seed in (int(s) for s in a.seeds.split(",")):
        t0 = time.perf_counter()
        models = trained(a, x, y, seed)
        res = ex.run_lds(x, y, specs, n_models=a.models, family=a.family, seed=seed, peers=peers,
                         models=models)  # fmt: skip
        res["seconds"] = time.perf_counter() - t0
        rows_out.append(res)
        write_results(a, rows_out)
        for name, v in res["valuers"].items():
            lo, hi = v["lds"]["ci95"]
            extra = ""
            if "lds_credit" in v:
                extra = f"  (credits {v['lds_credit']['mean']:.3f})"
            print(f"seed {seed} {name:24s} LDS {v['lds']['mean']:.3f} [{lo:.3f}, {hi:.3f}]{extra}",
                  flush=True)  # fmt: skip


def write_results(a: argparse.Namespace, rows_out: list[dict[str, Any]]) -> None:
    """The replicates so far, written after each one (a long run keeps what it measured)."""
    tag = a.data.split(":")[-1] + (f"{a.subset}" if a.subset else "")
    out_path = (
        Path(__file__).resolve().parent
        / "results"
        / f"model_aware_lds_{tag}_{a.family}{a.tag}.json"
    )
    write_json(out_path, {
        "command": "OMP_NUM_THREADS=1 python bench/model_aware_lds.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items()),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "replicates": rows_out,
    })  # fmt: skip


if __name__ == "__main__":
    main()
