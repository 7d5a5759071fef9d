"""The evaluation section: the run's ``RUN/eval/*.json`` (and the demo's summary) as plots.

Files written by ``gmvaluator evaluate`` hold, per valuer, estimates ``{"mean", "ci95", ...}``
of each metric: they become a table and one chart per metric comparing the valuers with their
95 % intervals. Any other JSON is shown by its numbers and its named series.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gmvaluator.report import plots
from gmvaluator.report.page import count, esc, img, num, num_cell, table

MAX_CHARTS = 12


def evaluations(found: dict[str, Any]) -> str:
    if not found:
        return ""
    parts = ['<h2 id="evaluation">Evaluation</h2>']
    for name, obj in found.items():
        parts.append(f"<h3>{esc(name)}</h3>")
        valuers = obj.get("valuers") if isinstance(obj, dict) else None
        parts.append(_criterion(obj) if isinstance(valuers, dict) else _generic(obj))
    return "\n".join(parts)


def _criterion(obj: dict[str, Any]) -> str:
    """Valuers x metrics: a table of means with 95 % intervals, and a chart per metric."""
    valuers: dict[str, dict[str, Any]] = obj["valuers"]
    metrics = list(dict.fromkeys(m for per in valuers.values() for m in per if _estimate(per[m])))
    setup = obj.get("setup") or {}
    shown = ", ".join(f"{k} {v}" for k, v in setup.items() if not isinstance(v, dict | list))
    parts = [f'<p class="note">{esc(shown)}</p>'] if shown else []
    body = [
        [f"<code>{esc(name)}</code>", *(_estimate_cell(per.get(m)) for m in metrics)]
        for name, per in valuers.items()
    ]
    parts.append(table(["valuer", *metrics], body, "eval"))
    if len(valuers) == 1:  # one valuer: its metrics side by side in one chart
        ((name, per),) = valuers.items()
        ests = [per[m] for m in metrics]
        chart = plots.estimate_chart(name, metrics, [float(e["mean"]) for e in ests], _cis(ests))
        return "\n".join([*parts, f'<div class="plots">{img(chart, name, "plot")}</div>'])
    charts = []
    for metric in metrics[:MAX_CHARTS]:
        names = [n for n, per in valuers.items() if _estimate(per.get(metric))]
        ests = [valuers[n][metric] for n in names]
        charts.append(
            img(
                plots.estimate_chart(
                    metric,
                    names,
                    [float(e["mean"]) for e in ests],
                    _cis(ests),
                ),
                metric,
                "plot",
            )
        )
    parts.append('<div class="plots">' + "".join(charts) + "</div>")
    return "\n".join(parts)


def _cis(ests: list[dict[str, Any]]) -> list[list[float]]:
    return [[float(x) for x in e.get("ci95") or (e["mean"], e["mean"])] for e in ests]


def _estimate(v: Any) -> bool:
    return isinstance(v, dict) and _is_number(v.get("mean"))


def _estimate_cell(v: Any) -> str:
    if not _estimate(v):
        return "<td></td>"
    ci = v.get("ci95")
    interval = f" [{num(ci[0], 3)}, {num(ci[1], 3)}]" if ci and ci[0] != ci[1] else ""
    return f'<td class="num">{num(v["mean"], 3)}{esc(interval)}</td>'


def _generic(obj: Any) -> str:
    """Any other JSON: its numbers as a table, its named series as bar charts."""
    parts = []
    scalars, series = _flatten(obj)
    if scalars:
        body = [[f"<code>{esc(k)}</code>", _number_cell(v)] for k, v in scalars[:60]]
        parts.append(table(["result", "value"], body, "eval"))
    charts = [
        img(plots.bar_chart(key, list(s), list(s.values())), key, "plot")
        for key, s in series[:MAX_CHARTS]
    ]
    if charts:
        parts.append('<div class="plots">' + "".join(charts) + "</div>")
    return "\n".join(parts)


def _flatten(obj: Any, prefix: str = "") -> tuple[list[tuple[str, float]], list[Any]]:
    """Numeric leaves as (path, number), and dicts of 2+ numbers (or number lists) as series."""
    scalars: list[tuple[str, int | float]] = []
    series: list[tuple[str, dict[str, float]]] = []
    if isinstance(obj, dict):
        numeric = {str(k): float(v) for k, v in obj.items() if _is_number(v)}
        if prefix and len(numeric) >= 2 and len(numeric) == len(obj) and len(obj) <= 60:
            return scalars, [(prefix, numeric)]
        for k, v in obj.items():
            s, r = _flatten(v, f"{prefix}.{k}" if prefix else str(k))
            scalars += s
            series += r
    elif isinstance(obj, list) and 2 <= len(obj) <= 60 and all(map(_is_number, obj)):
        series.append((prefix, {str(i): float(v) for i, v in enumerate(obj)}))
    elif _is_number(obj):
        scalars.append((prefix, obj))
    return scalars, series


def _number_cell(v: float) -> str:
    if isinstance(v, int | np.integer):
        return f'<td class="num">{count(int(v))}</td>'
    return num_cell(v, 4)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)
