"""What a run did, in a few lines: the summary that ``value`` and ``value --append`` print.

Read back from the run folder's ``run.json`` and ``config.json``, so that both commands say
the same things the same way: the embedder, metric, index and recall that ran, the matches,
the credit rule with its temperature, and the near copies found.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

#: Flagged generated samples named in the summary; run.json lists up to 100 of them.
SHOWN_NEAR_COPIES = 5


def print_summary(run: Path, headline: str, *, after: Sequence[str] = ()) -> None:
    """Print ``headline``, the lines of ``summary_lines(run)``, then ``after``."""
    for line in [headline, *summary_lines(run), *after]:
        typer.echo(line)


def summary_lines(run: Path) -> list[str]:
    """What ran, what it matched, the credit and the near copies of the run in ``run``."""
    record = _read(run / "run.json")
    config = _read(run / "config.json")
    return [
        ran_line(record, config),
        matched_line(record),
        credit_line(record.get("credit") or {}),
        near_copy_line(record.get("near_copy") or {}),
    ]


def ran_line(record: dict[str, Any], config: dict[str, Any]) -> str:
    """``ran: embedder ..., metric ..., index ..., recall@k ...``."""
    index = record.get("index") or {}
    recall = record.get("recall") or {}
    k = recall.get("k", config.get("k"))
    embedder = record.get("embedder") or config.get("embedder") or "default for the source kind"
    metric = index.get("metric") or config.get("metric", "?")
    factory, kind = index.get("factory", "?"), index.get("kind")
    at = recall.get("recall_at_k")
    recall_text = (
        "not measured" if at is None else f"{at:.3f} on {recall.get('queries', 0)} queries"
    )
    return (
        f"ran: embedder {embedder}, metric {metric}, index {factory}"
        + (f" ({kind})" if kind else "")
        + f", k={k}, recall@{k} {recall_text}"
    )


def matched_line(record: dict[str, Any]) -> str:
    counts = record.get("counts") or {}
    return f"matched {counts.get('n_matched', 0)} of {counts.get('n_train', 0)} training items"


def credit_line(credit: dict[str, Any]) -> str:
    """One line on the credit rule, its temperature and what it left unattributed."""
    line = f"credit: {credit.get('credit', 'paper')}, T = {temperature_text(credit)}"
    if credit.get("credit") == "calibrated":
        line += (
            "; unattributed "
            f"{100 * credit.get('unattributed_fraction', 0.0):.1f} % of the credit, "
            f"{credit.get('far_samples', 0)} generated samples far from all training data; "
            "rank by value and density"
        )
    return line


def temperature_text(credit: dict[str, Any]) -> str:
    """T as people read it: a number, or the per-sample rule of ``auto``."""
    from gmvaluator.core.calibration import TEMPERATURE_FACTOR

    t = credit.get("temperature", 1.0)
    if t != "auto":
        return f"{float(t):.4g}"
    floor = credit.get("temperature_floor", 0.0)
    return f"{TEMPERATURE_FACTOR:g} x each sample's best-match distance (at least {floor:.3g})"


def near_copy_line(near: dict[str, Any]) -> str:
    """How many generated samples have a near-copy match, and the first of them."""
    n = int(near.get("n_generated_flagged", 0))
    if not near:
        return "near copies: not checked"
    where = f"within the {near.get('quantile', '?')} quantile of training nearest-neighbour "
    where += f"distances, {near.get('space', 'run')} space"
    if n == 0:
        return f"near copies: none ({where})"
    ids = list(near.get("flagged_generated_ids") or [])[:SHOWN_NEAR_COPIES]
    more = ", ..." if n > len(ids) else ""
    return (
        f"near copies: {n} generated samples ({near.get('n_matches_flagged', n)} matches) "
        f"{where}: {', '.join(map(str, ids))}{more}"
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}
