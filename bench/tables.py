"""Render the JSON under bench/results/ as the Markdown tables of docs/EVALUATION.md.

python bench/tables.py > /tmp/tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


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
    head = "| valuer | " + " | ".join(metrics) + " |"
    rows = [head, "|" + "---|" * (len(metrics) + 1)]
    for valuer, vals in res["valuers"].items():
        cells = [fmt(_p(vals[m], m), scale, digits) if m in vals else "" for m in metrics]
        rows.append(f"| {valuer} | " + " | ".join(cells) + " |")
    setup = {k: v for k, v in res["setup"].items() if k not in ("valuer_specs", "valuer")}
    wall = res.get("wall_seconds")
    foot = f"\n`{name}.json`: {json.dumps(setup)}" + (f"; {wall:.0f} s" if wall else "")
    return "\n".join(rows) + "\n" + foot + "\n"


def _p(est: dict[str, Any], metric: str) -> dict[str, Any]:
    if metric == "p_value" and est.get("samples"):
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


def main() -> None:
    ks = ["k=10", "k=30", "k=50", "k=100"]
    ood = ["auroc", "auprc", "precision_at_n", "injected_matched_share"]
    mem = ["auroc", "p_value", "member_mean", "nonmember_mean"]
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
        ("Deletion and insertion, digits", table("digits_deletion", ["loss_change", "fid"])),
        ("LDS, digits (VAE, R = 32)", table("digits_lds", ["lds"])),
        ("LDS, digits (Gaussian mixture, R = 32)", table("digits_lds_gmm", ["lds"])),
        ("LDS, digits (diffusion, 60 epochs, R = 32)", table("digits_lds_diffusion", ["lds"])),
        ("C4 efficiency, Fashion-MNIST", c4_table("fashion_c4")),
        ("C4, digits", c4_table("digits_c4")),
    ]
    out = [f"### {title}\n\n{body}" for title, body in sections if body]
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
