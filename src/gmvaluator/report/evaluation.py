"""The evaluation section: the run's ``RUN/eval/*.json`` (and the demo's summary) as plots.

Files written by ``gmvaluator evaluate`` hold, per valuer, estimates ``{"mean", "ci95", ...}``
of each metric: they become a table and one chart per metric comparing the valuers with their
95 % intervals. Any other JSON is shown by its numbers and its named series.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gmvaluator.report import plots
from gmvaluator.report.page import render

MAX_CHARTS = 12


def evaluations(found: dict[str, Any]) -> str:
    if not found:
        return ""
    shown = []
    for name, obj in found.items():
        valuers = obj.get("valuers") if isinstance(obj, dict) else None
        shown.append(_criterion(name, obj) if isinstance(valuers, dict) else _generic(name, obj))
    return render("evaluation.html", evaluations=shown)


def _criterion(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Valuers x metrics: a table of means with 95 % intervals, and a chart per metric."""
    valuers: dict[str, dict[str, Any]] = obj["valuers"]
    metrics = list(dict.fromkeys(m for per in valuers.values() for m in per if _estimate(per[m])))
    setup = obj.get("setup") or {}
    rows = [
        {"name": valuer, "estimates": [_interval(per.get(m)) for m in metrics]}
        for valuer, per in valuers.items()
    ]
    if len(valuers) == 1:  # one valuer: its metrics side by side in one chart
        ((valuer, per),) = valuers.items()
        ests = [per[m] for m in metrics]
        means = [float(e["mean"]) for e in ests]
        charts = [(plots.estimate_chart(valuer, metrics, means, _cis(ests)), valuer)]
    else:
        charts = []
        for metric in metrics[:MAX_CHARTS]:
            names = [n for n, per in valuers.items() if _estimate(per.get(metric))]
            ests = [valuers[n][metric] for n in names]
            means = [float(e["mean"]) for e in ests]
            charts.append((plots.estimate_chart(metric, names, means, _cis(ests)), metric))
    return {
        "name": name,
        "setup": ", ".join(f"{k} {v}" for k, v in setup.items() if not isinstance(v, dict | list)),
        "metrics": metrics,
        "valuers": rows,
        "charts": charts,
    }


def _cis(ests: list[dict[str, Any]]) -> list[list[float]]:
    return [[float(x) for x in e.get("ci95") or (e["mean"], e["mean"])] for e in ests]


def _estimate(v: Any) -> bool:
    return isinstance(v, dict) and _is_number(v.get("mean"))


def _interval(v: Any) -> dict[str, float] | None:
    """An estimate as mean, lo, hi (lo = hi = mean without an interval); None when absent."""
    if not _estimate(v):
        return None
    ci = v.get("ci95") or (v["mean"], v["mean"])
    return {"mean": v["mean"], "lo": ci[0], "hi": ci[1]}


def _generic(name: str, obj: Any) -> dict[str, Any]:
    """Any other JSON: its numbers as a table, its named series as bar charts."""
    scalars, series = _flatten(obj)
    return {
        "name": name,
        "setup": "",
        "metrics": None,
        "scalars": [(k, int(v) if isinstance(v, int | np.integer) else v) for k, v in scalars[:60]],
        "charts": [
            (plots.bar_chart(key, list(s), list(s.values())), key) for key, s in series[:MAX_CHARTS]
        ],
    }


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


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)
