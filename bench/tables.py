"""Render the JSON under bench/results/ as the Markdown tables and plots of docs/EVALUATION.md.

python bench/tables.py > /tmp/tables.md     # the tables
python bench/tables.py --plot               # docs/images/eval_*.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
SENSITIVITY_RUNS = (
    ("sensitivity_digits", "digits"),
    ("sensitivity_fashion", "Fashion-MNIST 2,000"),
)


def fmt(est: dict[str, Any], scale: float = 1.0, digits: int = 3) -> str:
    if est.get("p_value_samples"):
        # a t-interval of p-values means little: show the median and range over repeats
        s = sorted(est["p_value_samples"])
        med = s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2
        return f"{med:.2g} (median; {s[0]:.2g}–{s[-1]:.2g})"
    lo, hi = est["ci95"]
    m = est["mean"] * scale
    return f"{m:.{digits}f} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"


def table(name: str, metrics: list[str], scale: float = 1.0, digits: int = 3) -> str:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return ""
    res = json.loads(path.read_text())
    # drop columns no row has (older files name the pixel FID "fid", newer ones "fid:pixels")
    metrics = [m for m in metrics if any(m in vals for vals in res["valuers"].values())]
    head = "| valuer | " + " | ".join(metrics) + " |"
    rows = [head, "|" + "---|" * (len(metrics) + 1)]
    for valuer, vals in res["valuers"].items():
        cells = [fmt(_p(vals[m], m), scale, digits) if m in vals else "" for m in metrics]
        rows.append(f"| {valuer} | " + " | ".join(cells) + " |")
    hidden = ("valuer_specs", "valuer", "variants")
    setup = {k: v for k, v in res["setup"].items() if k not in hidden}
    wall = res.get("wall_seconds")
    foot = f"\n`{name}.json`: {json.dumps(setup)}" + (f"; {wall:.0f} s" if wall else "")
    return "\n".join(rows) + "\n" + foot + "\n"


def _p(est: dict[str, Any], metric: str) -> dict[str, Any]:
    if metric.startswith("p_value") and est.get("samples"):
        return {**est, "p_value_samples": est["samples"]}
    return est


def c4_table(name: str) -> str:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return ""
    res = json.loads(path.read_text())
    stages = ["embed_train_s", "embed_generated_s", "index_build_s", "search_s", "recall_s"]
    rows = [
        "| valuer | " + " | ".join(stages) + " | total s | ms per generated |",
        "|---" * 8 + "|",
    ]
    for valuer, v in res["valuers"].items():
        s = v["seconds"]
        per = 1000 * v["per_generated_sample_s"]["total_s"]
        cells = [f"{s.get(k, 0.0):.3f}" for k in stages]
        rows.append(f"| {valuer} | " + " | ".join(cells) + f" | {s['total_s']:.2f} | {per:.2f} |")
    return (
        "\n".join(rows)
        + f"\n\n`{name}.json`: {json.dumps(res['setup'] | {'valuer_specs': None})}\n"
    )


def sensitivity_index_table(name: str, k_small: int = 10, k_large: int = 100) -> str:
    """One row per index variant: what was built, its recall@k and C1 / membership at k."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return ""
    res = json.loads(path.read_text())
    a, b = f"k={k_small}", f"k={k_large}"
    cols = [f"recall@{a}", f"recall@{b}", f"c1@{a}", f"c1@{b}", f"auroc@{a}", f"p_value@{a}"]
    rows = [
        "| variant | index | re-rank (K') | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 3) + "|",
    ]
    for variant, info in sorted(res["setup"]["variants"].items(), key=lambda kv: _order(kv[0])):
        spec, index = info["spec"], info["index"]
        vals = res["valuers"][variant]
        if spec["random"]:
            built, rerank = "—", "—"
        else:
            built = index["factory"] + (f", nprobe {index['nprobe']}" if index["nprobe"] else "")
            built = f"{spec['embedder']}: {built}"
            rerank = "exact" if spec["rerank"] == "exact" else "none"
            if spec["rerank"] == "exact" and index["kind"] != "exact":
                rerank += f" ({index['n_candidates']})"
        cells = [fmt(_p(vals[c], c), 1.0, 3) if c in vals else "" for c in cols]
        rows.append(f"| {variant} | {built} | {rerank} | " + " | ".join(cells) + " |")
    setup = {k: v for k, v in res["setup"].items() if k != "variants"}
    wall = res.get("wall_seconds")
    foot = f"\n`{name}.json`: {json.dumps(setup)}" + (f"; {wall:.0f} s" if wall else "")
    return "\n".join(rows) + "\n" + foot + "\n"


def _order(variant: str) -> tuple[str, bool]:
    """Each ``+rerank`` variant right after the same index without re-rank."""
    return variant.removesuffix("+rerank"), variant.endswith("+rerank")


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _curve(ax: Any, est: list[dict[str, Any]], xs: list[int], label: str, **style: Any) -> None:
    mean = [e["mean"] for e in est]
    (line,) = ax.plot(xs, mean, marker="o", markersize=3, label=label, **style)
    lo, hi = [e["ci95"][0] for e in est], [e["ci95"][1] for e in est]
    ax.fill_between(xs, lo, hi, alpha=0.12, color=line.get_color())


def _colours(ax: Any) -> None:
    # tab10 without its grey, which marks the random baseline
    import matplotlib as mpl

    tab10 = mpl.colormaps["tab10"].colors
    ax.set_prop_cycle(color=[tab10[i] for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)] + ["navy", "olive"])


def plot_c1_vs_k(out: Path) -> Path | None:
    """C1 against k for every valuer, one panel per data set."""
    import matplotlib.pyplot as plt

    panels = [
        (n, t)
        for n, t in (
            ("digits_c1", "digits, VAE"),
            ("fashion_c1", "Fashion-MNIST 60,000, VAE"),
            ("fashion-effnet_c1", "Fashion-MNIST 3,000, VAE"),
        )
        if _load(n)
    ]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (name, title) in zip(axes[0], panels, strict=True):
        res = _load(name)
        assert res is not None
        ks = res["setup"]["ks"]
        _colours(ax)
        for valuer, vals in res["valuers"].items():
            style = {"linestyle": "--", "color": "grey"} if valuer == "random" else {}
            _curve(ax, [vals[f"k={k}"] for k in ks], ks, valuer, **style)
        ax.set(title=title, xlabel="k", ylabel="C1: share of top-k with the class", ylim=(0, 1.02))
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_sensitivity_k(out: Path) -> Path | None:
    """C1 and membership AUROC against k for each embedder (exact search) and random."""
    import matplotlib.pyplot as plt

    runs = [(n, t) for n, t in SENSITIVITY_RUNS if _load(n)]
    if not runs:
        return None
    fig, axes = plt.subplots(2, len(runs), figsize=(4.8 * len(runs), 7), squeeze=False)
    for col, (name, title) in enumerate(runs):
        res = _load(name)
        assert res is not None
        ks = res["setup"]["ks"]
        _colours(axes[0][col])
        _colours(axes[1][col])
        for variant, vals in res["valuers"].items():
            if not (variant.startswith("exact:") or variant == "random"):
                continue
            style = {"linestyle": "--", "color": "grey"} if variant == "random" else {}
            for row, metric in enumerate(("c1", "auroc")):
                ests = [vals[f"{metric}@k={k}"] for k in ks]
                _curve(axes[row][col], ests, ks, variant, **style)
        axes[0][col].set(title=f"{title}: C1", ylabel="share of top-k with the class")
        axes[1][col].set(title=f"{title}: membership", ylabel="AUROC members vs held out")
        axes[1][col].axhline(0.5, color="black", linewidth=0.6)
        for row in range(2):
            axes[row][col].set_xscale("log")
            axes[row][col].set_xticks(ks, [str(k) for k in ks])
            axes[row][col].set_xlabel("k")
            axes[row][col].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_sensitivity_index(out: Path, k: int = 10) -> Path | None:
    """recall@k of each PQ variant against exact search, and what it does to C1 and AUROC."""
    import matplotlib.pyplot as plt

    runs = [(n, t) for n, t in SENSITIVITY_RUNS if _load(n)]
    if not runs:
        return None
    fig, axes = plt.subplots(1, len(runs), figsize=(5.6 * len(runs), 4.2), squeeze=False)
    for ax, (name, title) in zip(axes[0], runs, strict=True):
        res = _load(name)
        assert res is not None
        names = sorted(
            (v for v in res["valuers"] if f"recall@k={k}" in res["valuers"][v]), key=_order
        )
        x = range(len(names))
        for off, metric in ((-0.27, "recall"), (0.0, "c1"), (0.27, "auroc")):
            ests = [res["valuers"][v][f"{metric}@k={k}"] for v in names]
            err = [
                [e["mean"] - e["ci95"][0] for e in ests],
                [e["ci95"][1] - e["mean"] for e in ests],
            ]
            means = [e["mean"] for e in ests]
            pos = [i + off for i in x]
            ax.bar(pos, means, 0.27, yerr=err, label=f"{metric}@{k}", capsize=2)
        # dotted lines: exact search with the embedder the PQ variants index
        embedder = res["setup"]["variants"][names[0]]["spec"]["embedder"]
        exact = res["valuers"].get(f"exact:{embedder}", {})
        for metric, color in (("c1", "C1"), ("auroc", "C2")):
            if f"{metric}@k={k}" in exact:
                ref = exact[f"{metric}@k={k}"]["mean"]
                ax.axhline(ref, color=color, linestyle=":", linewidth=1)
        ax.set_xticks(list(x), names, rotation=35, ha="right", fontsize=7)
        ax.set(title=f"{title}: PQ settings and re-rank (k = {k})", ylim=(0, 1.05))
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_all() -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    IMAGES.mkdir(parents=True, exist_ok=True)
    made = [
        plot_c1_vs_k(IMAGES / "eval_c1_vs_k.png"),
        plot_sensitivity_k(IMAGES / "eval_sensitivity_k.png"),
        plot_sensitivity_index(IMAGES / "eval_sensitivity_index.png"),
    ]
    return [p for p in made if p is not None]


def main() -> None:
    if "--plot" in sys.argv[1:]:
        for path in plot_all():
            print(f"wrote {path}")
        return
    ks = ["k=10", "k=30", "k=50", "k=100"]
    ood = ["auroc", "auprc", "precision_at_n", "injected_matched_share"]
    mem = ["auroc", "p_value", "member_mean", "nonmember_mean"]
    fids = ["fid", "fid:pixels", "fid:efficientnet-lite0"]
    sections = [
        ("C1 identical class, Fashion-MNIST (pixels)", table("fashion_c1", ks)),
        ("C1, Fashion-MNIST subset (EfficientNet-Lite0)", table("fashion-effnet_c1", ks)),
        ("C1, digits (VAE)", table("digits_c1", ks)),
        ("C1, digits (Gaussian mixture)", table("digits_c1_gmm", ks)),
        ("C1, digits (diffusion)", table("digits_c1_diffusion", ks)),
        ("C1, digits (GAN)", table("digits_c1_gan", ks)),
        (
            "C2 identical attribute group, Fashion-MNIST",
            table("fashion_c2", ["k=5", "k=10", "k=15"]),
        ),
        ("C2, digits", table("digits_c2", ["k=5", "k=10", "k=15"])),
        ("C3 out-of-distribution, Fashion-MNIST", table("fashion_c3", ood)),
        ("C3, Fashion-MNIST subset (EfficientNet-Lite0)", table("fashion-effnet_c3", ood)),
        ("C3, digits (VAE)", table("digits_c3", ood)),
        ("C3, digits (Gaussian mixture)", table("digits_c3_gmm", ood)),
        ("Membership, Fashion-MNIST", table("fashion_membership", mem, digits=4)),
        ("Membership, Fashion-MNIST subset", table("fashion-effnet_membership", mem, digits=4)),
        ("Membership, digits", table("digits_membership", mem, digits=4)),
        (
            "Deletion and insertion, Fashion-MNIST",
            table("fashion_deletion", ["loss_change", "fid"]),
        ),
        (
            "Deletion and insertion, Fashion-MNIST 2,000 (FID in pixels and EfficientNet-Lite0)",
            table("fashion-effnet_deletion", ["loss_change", *fids]),
        ),
        ("Deletion and insertion, digits", table("digits_deletion", ["loss_change", *fids])),
        ("LDS, digits (VAE, R = 32)", table("digits_lds", ["lds"])),
        ("LDS, digits (Gaussian mixture, R = 32)", table("digits_lds_gmm", ["lds"])),
        ("LDS, digits (diffusion, 60 epochs, R = 32)", table("digits_lds_diffusion", ["lds"])),
        ("C4 efficiency, Fashion-MNIST", c4_table("fashion_c4")),
        ("C4, digits", c4_table("digits_c4")),
    ]
    for name, title in (("digits", "digits"), ("fashion", "Fashion-MNIST 2,000")):
        file = f"sensitivity_{name}"
        sk = [f"c1@k={k}" for k in (1, 5, 10, 30, 50, 100)]
        sa = [f"auroc@k={k}" for k in (1, 5, 10, 30, 50, 100)]
        sections += [
            (f"Sensitivity to k, C1 ({title})", table(file, sk)),
            (f"Sensitivity to k, membership AUROC ({title})", table(file, sa)),
            (f"Sensitivity to the index and re-rank ({title})", sensitivity_index_table(file)),
        ]
    out = [f"### {title}\n\n{body}" for title, body in sections if body]
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
