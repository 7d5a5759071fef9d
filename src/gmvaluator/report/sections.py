"""The sections of the report page: each gathers what it shows from the run's data and renders
its template (``report/templates/<section>.html``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gmvaluator.report import data as d
from gmvaluator.report import plots
from gmvaluator.report.media import Media, MediaSet
from gmvaluator.report.page import render

LINKS = ("values.parquet", "attributions.parquet", "run.json", "config.json")
#: Generated samples listed in a training item's panel, most credit first.
PANEL_LIMIT = 50
#: A generated sample that hands out less than this share of its credit is far from all
#: training data (the calibrated credit rule's own mark; run.json may say otherwise).
FAR_BELOW = 0.5


def header(run: d.RunData, notes: list[str], anchors: list[str]) -> str:
    """Title, what was valued against what, settings, counts, timings and versions."""
    cfg, rec = run.config, run.run
    inputs = rec.get("inputs", {})
    index = rec.get("index") or {}
    recall = rec.get("recall") or {}
    near = rec.get("near_copy") or {}
    if near.get("rule"):
        rule = str(near["rule"]).removeprefix("near copy: ")
        notes = [*notes, f"a match is flagged as a near copy when {rule}"]
    versions = {"gmvaluator": rec.get("gmvaluator"), **rec.get("versions", {})}
    return render(
        "header.html",
        name=run.run_dir.resolve().name,
        links=LINKS,
        python=rec.get("python"),
        platform=rec.get("platform", ""),
        train_src=inputs.get("train", {}).get("source", cfg.get("train", "?")),
        gen_src=inputs.get("generated", {}).get("source", cfg.get("generated", "?")),
        n_train=run.n_train,
        n_generated=run.n_generated,
        embedder=rec.get("embedder") or cfg.get("embedder") or "default for the source kind",
        metric=index.get("metric") or cfg.get("metric", "?"),
        near=near,
        factory=index.get("factory", "?"),
        reason=index.get("reason", ""),
        recall_k=recall.get("k", run.k),
        recall_at_k=recall.get("recall_at_k", float("nan")),
        recall_queries=recall.get("queries", 0),
        n_candidates=index.get("n_candidates", "?"),
        matched=int(np.count_nonzero(run.values["n_matches"].to_numpy())),
        k=run.k,
        credit=_credit_fact(rec.get("credit") or {}, cfg),
        distance=rec.get("distance") or cfg.get("metric", "?"),
        quality=cfg.get("quality"),
        timings=[(k.removesuffix("_s"), float(v)) for k, v in rec.get("timings", {}).items()],
        versions=", ".join(f"{k} {v}" for k, v in versions.items() if v),
        notes=notes,
        anchors=anchors,
    )


def _media(media: Media | MediaSet, item_id: str, row: int | None) -> dict[str, str | None]:
    """What the page shows of an item: a thumbnail (``uri``), else its text, else nothing."""
    uri = media.image(item_id, row)
    return {"uri": uri, "text": None if uri is not None else media.text(item_id, row)}


def samples(
    run: d.RunData,
    chosen: np.ndarray,
    train: Media,
    gen: MediaSet,
    gen_labels: np.ndarray | None,
    names: dict[Any, str],
    near_copy: float | None,
    max_contributors: int,
) -> str:
    """One section per chosen generated sample: the sample and its top contributors."""
    shown_k = min(run.k, max_contributors)
    flagged, space = 0, "run"
    if near_copy is not None:
        flagged = int(run.attributions["flag"].to_numpy().reshape(-1, run.k).any(axis=1).sum())
        rec = run.run.get("near_copy") or {}
        space = str(rec.get("space", "run")) if rec.get("threshold") == near_copy else "run"
    return render(
        "samples.html",
        samples=[_sample(run, int(j), shown_k, train, gen, gen_labels, names) for j in chosen],
        n_generated=run.n_generated,
        by_class=gen_labels is not None and len(chosen) < run.n_generated,
        shown_k=shown_k,
        k=run.k,
        near_copy=near_copy,
        space=space,
        n_flagged=flagged,
    )


def _sample(
    run: d.RunData,
    j: int,
    shown_k: int,
    train: Media,
    gen: MediaSet,
    gen_labels: np.ndarray | None,
    names: dict[Any, str],
) -> dict[str, Any]:
    rows = run.matches(j).head(shown_k)
    gid = str(run.generated_ids[j])
    q = float(rows["quality"].iloc[0])
    share = None if run.generated is None else float(run.generated["share"].iloc[j])
    handed = q * (1.0 if share is None else share)
    train_labels = run.train_labels
    contributors = []
    for r in rows.itertuples(index=False):
        tid, row = str(r.train_id), int(r.train_row)
        contributors.append(
            {
                "id": tid,
                "rank": int(r.rank),
                "credit": float(r.credit),
                "distance": float(r.distance),
                "share": r.credit / handed if handed > 0 else 0.0,
                "near_copy": bool(r.flag),
                "media": _media(train, tid, row),
                "label": None if train_labels is None else _name(train_labels[row], names),
            }
        )
    return {
        "row": j,
        "id": gid,
        "quality": q,
        "attributable": share,
        "far": share is not None and share < _far_below(run),
        "label": None if gen_labels is None else _name(gen_labels[j], names),
        "media": _media(gen, gid, j),
        "contributors": contributors,
    }


def items(
    run: d.RunData, train: Media, names: dict[Any, str], n: int, near_copy: float | None
) -> str:
    """Most and least valuable training items, the value distribution, the Lorenz curve."""
    values = run.values["value"].to_numpy()
    g = d.gini(values)
    att = run.attributions
    first = att["distance"].to_numpy()[:: run.k]
    others = att.loc[att["rank"] > 1, "distance"].to_numpy()
    extra = [c for c in ("density", "label", "contributor") if c in run.values]
    ranked = "density" in run.values
    most, least = d.most_valuable(run.values, n), d.least_valuable(run.values, n)
    far_below = _far_below(run)
    shown_rows = list(dict.fromkeys([*most.index.tolist(), *least.index.tolist()]))
    return render(
        "items.html",
        matched=int(np.count_nonzero(run.values["n_matches"].to_numpy())),
        n_train=run.n_train,
        zero=int(np.count_nonzero(values == 0)),
        gini=g,
        total=values.sum(),
        images=[
            (plots.value_histogram(values), "value histogram"),
            (plots.lorenz_curve(*d.lorenz(values), g), "Lorenz curve"),
            (plots.distance_histogram(first, others, near_copy), "distances"),
        ],
        n=n,
        extra=extra,
        top=values.max(),
        most=_item_rows(most, train, names, extra),
        least=_item_rows(least, train, names, extra),
        panels=_panels(run, shown_rows, train, far_below),
        panel_limit=PANEL_LIMIT,
        far_below=far_below,
        least_title="Last by rank" if ranked else "Least valuable (with credit)",
        least_note=(
            "The rank orders every item by a blend of its value and the density of generated "
            "samples around it; the last are the ones the generated samples use least."
            if ranked
            else '"Least valuable" lists the lowest values above zero.'
        ),
    )


def _credit_fact(credit: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """The credit rule as the header shows it, with what it left unattributed."""
    name = credit.get("credit", "paper")
    t = credit.get("temperature", cfg.get("temperature", 1.0))
    floor = credit.get("temperature_floor")
    shown = f"{float(t):.4g}" if t != "auto" else f"per sample, at least {float(floor or 0):.3g}"
    rule = credit.get("rule", "")
    return {
        "name": name,
        "temperature": shown,
        "rule": rule,
        "unattributed": credit.get("unattributed_fraction"),
        "far": credit.get("far_samples"),
        "far_below": credit.get("far_share_below"),
    }


def _item_rows(
    rows: pd.DataFrame, media: Media, names: dict[Any, str], extra: list[str]
) -> list[dict[str, Any]]:
    return [
        {
            "id": str(row.train_id),
            "row": int(row.Index),
            "rank": row.rank,
            "media": _media(media, str(row.train_id), int(row.Index)),
            "value": float(row.value),
            "n_matches": row.n_matches,
            "extra": [_name(getattr(row, c), names) for c in extra],
        }
        for row in rows.itertuples()
    ]


def _far_below(run: d.RunData) -> float:
    """The attributable share under which a generated sample is far from all training data."""
    return float((run.run.get("credit") or {}).get("far_share_below", FAR_BELOW))


def _panels(
    run: d.RunData, rows: list[int], media: Media, far_below: float
) -> list[dict[str, Any]]:
    """For each training row shown, the generated samples that credited it: id, credit,
    distance, the item's rank among the sample's matches, and whether the sample is far from
    all training data (its attributable share under ``far_below``)."""
    att = run.attributions
    train_rows = att["train_row"].to_numpy()
    positions = np.flatnonzero(np.isin(train_rows, rows))
    share = None
    if run.generated is not None and "share" in run.generated:
        share = run.generated["share"].to_numpy()
    credit = att["credit"].to_numpy()
    by_row: dict[int, list[int]] = {}
    for pos in positions[np.argsort(-credit[positions], kind="stable")]:
        by_row.setdefault(int(train_rows[pos]), []).append(int(pos))
    distance, rank = att["distance"].to_numpy(), att["rank"].to_numpy()
    panels = []
    for row in rows:
        found = [p for p in by_row.get(int(row), []) if credit[p] > 0]
        far = [share is not None and share[p // run.k] < far_below for p in found]
        tid = str(run.values["train_id"].iloc[row])
        panels.append(
            {
                "row": int(row),
                "id": tid,
                "media": _media(media, tid, int(row)),
                "value": float(run.values["value"].iloc[row]),
                "n_matches": len(found),
                "n_far": int(sum(far)),
                "more": len(found) > PANEL_LIMIT,
                "credited": [
                    {
                        "id": str(run.generated_ids[p // run.k]),
                        "shown": p // run.k,
                        "credit": float(credit[p]),
                        "distance": float(distance[p]),
                        "rank": int(rank[p]),
                        "far": is_far,
                    }
                    for p, is_far in zip(found[:PANEL_LIMIT], far, strict=False)
                ],
            }
        )
    return panels


def contributors(run: d.RunData, n: int) -> str:
    if "contributor" not in run.values:
        return ""
    t = d.contributor_table(run.values)
    rows = [
        {
            "group": str(r.group),
            "credit": float(r.credit),
            "share": r.share,
            "n_items": r.items,
            "matched": r.matched,
        }
        for r in t.head(n).itertuples()
    ]
    return render("contributors.html", rows=rows, n_contributors=len(t), top=t["share"].iloc[0])


def classes(run: d.RunData, gen_labels: np.ndarray | None, names: dict[Any, str]) -> str:
    if run.train_labels is None:
        return ""
    t = d.class_table(run.values)
    label_names = [_name(v, names) for v in t["group"]]
    share_of_items = t["items"] / t["items"].sum()
    images = [(plots.class_credit(label_names, t["share"], share_of_items), "credit per class")]
    if gen_labels is not None:
        rows, cols, shares = d.class_mix(run, gen_labels)
        if len(rows) <= 60 and len(cols) <= 60:
            rn, cn = [_name(v, names) for v in rows], [_name(v, names) for v in cols]
            images.append((plots.class_mix(rn, cn, shares), "class mix"))
    table = [
        {
            "name": name,
            "credit": r.credit,
            "share": r.share,
            "n_items": r.items,
            "matched": r.matched,
        }
        for name, r in zip(label_names, t.itertuples(), strict=True)
    ]
    return render(
        "classes.html",
        images=images,
        rows=table[:100],
        n_classes=len(table),
        top=float(t["share"].max()) or 1.0,
    )


def _name(label: Any, names: dict[Any, str]) -> str:
    key = label.item() if isinstance(label, np.generic) else label
    if isinstance(key, float):  # the density column
        return f"{key:.3f}"
    return names.get(key, str(key))
