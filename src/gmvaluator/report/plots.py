"""The report's plots as PNG data URIs, drawn with matplotlib's Agg canvas (no display needed).

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so no global state or
interactive backend is touched and figures are freed as soon as they are encoded.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

ACCENT = "#3b6fb6"
MUTED = "#9aa5b1"


def _figure(width: float = 5.2, height: float = 3.2) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def value_histogram(values: np.ndarray) -> str:
    """Distribution of the values of items that received credit (log counts)."""
    fig, ax = _figure()
    got = values[values > 0]
    if len(got):
        counts, edges = np.histogram(got, bins=min(60, max(10, int(np.sqrt(len(got))))))
        ax.stairs(counts, edges, fill=True, color=ACCENT)
        ax.set_yscale("log")
    ax.set_xlabel("value φ (credit received)")
    ax.set_ylabel("training items (log)")
    ax.set_title(f"Values of the {len(got):,} items with credit")
    return _uri(fig)


def lorenz_curve(share_items: np.ndarray, share_credit: np.ndarray, gini: float) -> str:
    fig, ax = _figure(4.2, 3.6)
    ax.plot([0, 1], [0, 1], color=MUTED, linestyle="--", label="equal credit")
    ax.plot(share_items, share_credit, color=ACCENT, label="this run")
    ax.fill_between(share_items, share_credit, share_items, color=ACCENT, alpha=0.12)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("share of training items (lowest value first)")
    ax.set_ylabel("share of total credit")
    ax.set_title(f"Lorenz curve, Gini = {gini:.3f}")
    ax.legend(loc="upper left", frameon=False)
    return _uri(fig)


def distance_histogram(first: np.ndarray, others: np.ndarray, threshold: float | None) -> str:
    """Distances of the best match of each generated sample against those of the other matches."""
    fig, ax = _figure()
    both = np.concatenate([first, others])
    bins = np.histogram_bin_edges(both, bins=50) if len(both) else np.linspace(0, 1, 11)
    ax.stairs(np.histogram(others, bins)[0], bins, fill=True, color=MUTED, label="ranks 2..k")
    ax.stairs(
        np.histogram(first, bins)[0], bins, fill=True, color=ACCENT, alpha=0.8, label="rank 1"
    )
    if threshold is not None:
        ax.axvline(threshold, color="#c0392b", linestyle="--", label="near-copy threshold")
    ax.set_xlabel("distance to the generated sample")
    ax.set_ylabel("matches")
    ax.set_title("Distances of the matches")
    ax.legend(loc="best", framealpha=0.9)
    return _uri(fig)


def class_credit(names: Sequence[str], credit_share: np.ndarray, item_share: np.ndarray) -> str:
    """Share of credit per training class, beside the class's share of the training set."""
    credit_share, item_share = np.asarray(credit_share), np.asarray(item_share)
    fig, ax = _figure(max(4.5, 0.45 * len(names) + 2), 3.2)
    x = np.arange(len(names))
    ax.bar(x - 0.2, credit_share, width=0.4, color=ACCENT, label="share of credit")
    ax.bar(x + 0.2, item_share, width=0.4, color=MUTED, label="share of training items")
    ax.set_xticks(x, names, rotation=45 if max(map(len, names), default=0) > 3 else 0, ha="right")
    ax.set_ylabel("share")
    top = max(float(np.max(credit_share, initial=0)), float(np.max(item_share, initial=0)))
    ax.set_ylim(0, 1.3 * top if top > 0 else 1)
    ax.set_title("Credit per training class")
    ax.legend(frameon=False, loc="upper right", ncols=2)
    return _uri(fig)


def class_mix(rows: Sequence[str], cols: Sequence[str], shares: np.ndarray) -> str:
    """Heat map: per generated class (row), the share of its credit per training class."""
    size = 0.42
    fig, ax = _figure(max(4.0, size * len(cols) + 2.5), max(3.0, size * len(rows) + 1.6))
    im = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("class of the training contributors")
    ax.set_ylabel("class of the generated sample")
    if shares.size <= 400:
        for (i, j), v in np.ndenumerate(shares):
            if v >= 0.005:
                ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if v > 0.55 else "black")  # fmt: skip
    fig.colorbar(im, ax=ax, label="share of credit")
    ax.set_title("Class mix of contributors (%)")
    return _uri(fig)


def bar_chart(title: str, labels: Sequence[str], numbers: Sequence[float]) -> str:
    """Horizontal bars of named numbers (an evaluation's metrics)."""
    fig, ax = _figure(5.6, max(1.6, 0.28 * len(labels) + 1.0))
    return _labelled_bars(fig, ax, title, labels, numbers, digits=4, va="center", margin=0.18)


def estimate_chart(
    title: str, labels: Sequence[str], means: Sequence[float], ci95: Sequence[Sequence[float]]
) -> str:
    """Horizontal bars of estimates (one per valuer) with their 95 % intervals."""
    fig, ax = _figure(4.6, max(1.6, 0.3 * len(labels) + 1.0))
    m = np.asarray(means, dtype=np.float64)
    ci = np.asarray(ci95, dtype=np.float64).reshape(-1, 2)
    err = np.abs(np.stack([m - ci[:, 0], ci[:, 1] - m]))
    style = {"xerr": err, "ecolor": "#1d2733", "capsize": 3}
    return _labelled_bars(fig, ax, title, labels, m, digits=3, va="bottom", margin=0.15, **style)


def _labelled_bars(
    fig: Any,
    ax: Any,
    title: str,
    labels: Sequence[str],
    numbers: Sequence[float] | np.ndarray,
    *,
    digits: int,
    va: str,
    margin: float,
    **bars: Any,
) -> str:
    """Horizontal bars, first at the top, each with its number written at its end."""
    y = np.arange(len(labels))
    ax.barh(y, numbers, color=ACCENT, **bars)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    for yi, v in zip(y, numbers, strict=True):
        ax.text(v, yi, f" {v:.{digits}g}", va=va, fontsize=7)
    ax.margins(x=margin)
    ax.set_title(title)
    return _uri(fig)
