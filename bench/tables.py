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
        return f"_{name}: not run_\n"
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
        return f"_{name}: not run_\n"
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
    out = []
    for suite in ("fashion", "fashion-effnet", "digits"):
        out += [f"## {suite}: C1", table(f"{suite}_c1", ks)]
        out += [f"## {suite}: C2", table(f"{suite}_c2", ["k=5", "k=10", "k=15"])]
        out += [f"## {suite}: C3", table(f"{suite}_c3", ood)]
        out += [f"## {suite}: membership", table(f"{suite}_membership", mem, digits=4)]
        out += [f"## {suite}: deletion", table(f"{suite}_deletion", ["loss_change", "fid"])]
        out += [f"## {suite}: C4", c4_table(f"{suite}_c4")]
    out += ["## digits: C3 (GMM)", table("digits_c3_gmm", ood)]
    out += ["## digits: LDS (CVAE)", table("digits_lds", ["lds"])]
    out += ["## digits: LDS (GMM)", table("digits_lds_gmm", ["lds"])]
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
