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
        embedder=cfg.get("embedder") or "default for the source kind",
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
        most=_item_rows(d.most_valuable(run.values, n), train, names, extra),
        least=_item_rows(d.least_valuable(run.values, n), train, names, extra),
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
            "rank": row.rank,
            "media": _media(media, str(row.train_id), int(row.Index)),
            "value": float(row.value),
            "n_matches": row.n_matches,
            "extra": [_name(getattr(row, c), names) for c in extra],
        }
        for row in rows.itertuples()
    ]


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
