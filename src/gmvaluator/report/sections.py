"""The sections of the report page, each a function from the run's data to an HTML string."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gmvaluator.report import data as d
from gmvaluator.report import plots
from gmvaluator.report.media import Media, MediaSet
from gmvaluator.report.page import bar, cards, count, esc, facts, img, num, num_cell, pct, table

LINKS = ("values.parquet", "attributions.parquet", "run.json", "config.json")


def header(run: d.RunData, notes: list[str], anchors: list[str]) -> str:
    """Title, what was valued against what, settings, counts, timings and versions."""
    cfg, rec = run.config, run.run
    inputs = rec.get("inputs", {})
    index = rec.get("index") or {}
    recall = rec.get("recall") or {}
    quality = cfg.get("quality")
    matched = int(np.count_nonzero(run.values["n_matches"].to_numpy()))
    train_src = inputs.get("train", {}).get("source", cfg.get("train", "?"))
    gen_src = inputs.get("generated", {}).get("source", cfg.get("generated", "?"))
    settings = [
        ("training set", f"<code>{esc(train_src)}</code> ({count(run.n_train)} items)"),
        ("generated set", f"<code>{esc(gen_src)}</code> ({count(run.n_generated)} samples)"),
        ("embedder", esc(cfg.get("embedder") or "default for the source kind")),
        ("index", f"<code>{esc(index.get('factory', '?'))}</code> {esc(index.get('reason', ''))}"),
        (
            f"recall@{recall.get('k', run.k)}",
            f"{num(recall.get('recall_at_k', float('nan')), 3)} "
            f"(on {count(recall.get('queries', 0))} queries, against exact search)",
        ),
        ("re-rank", f"exact, of {esc(index.get('n_candidates', '?'))} candidates"),
        ("matched", f"{count(matched)} training items ({pct(matched / run.n_train)})"),
        ("k", str(run.k)),
        ("temperature", esc(cfg.get("temperature", "?"))),
        ("distance", esc(rec.get("distance") or cfg.get("metric", "?"))),
        ("quality", f"<code>{esc(quality)}</code>" if quality else "1 for every sample"),
    ]
    near = rec.get("near_copy") or {}
    if near.get("rule"):
        rule = str(near["rule"]).removeprefix("near copy: ")
        notes = [*notes, f"a match is flagged as a near copy when {rule}"]
    timings = rec.get("timings", {})
    versions = {"gmvaluator": rec.get("gmvaluator"), **rec.get("versions", {})}
    links = " · ".join(f'<a href="../{name}">{name}</a>' for name in LINKS)
    python = (
        f" Python {esc(rec['python'])}, {esc(rec.get('platform', ''))}." if "python" in rec else ""
    )
    parts = [
        f"<h1>Valuation report: {esc(run.run_dir.resolve().name)}</h1>",
        f'<p class="note">Full data: {links}.{python}</p>',
        facts(settings),
        facts((k.removesuffix("_s"), f"{float(v):.2f} s") for k, v in timings.items()),
        '<p class="note">' + esc(", ".join(f"{k} {v}" for k, v in versions.items() if v)) + "</p>",
    ]
    parts += [f'<p class="note">Note: {esc(n)}.</p>' for n in notes]
    parts.append("<nav>" + "".join(f'<a href="#{a}">{a}</a>' for a in anchors) + "</nav>")
    return "\n".join(parts)


def _item_media(media: Media | MediaSet, item_id: str, row: int | None, big: bool = False) -> str:
    uri = media.image(item_id, row)
    if uri is not None:
        return img(uri, item_id, "thumb big" if big else "thumb")
    text = media.text(item_id, row)
    if text is not None:
        tag = "blockquote" if big else "p"
        return f'<{tag} class="snippet">{esc(text)}</{tag}>'
    return ""


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
    train_labels = run.train_labels
    shown_k = min(run.k, max_contributors)
    note = (
        f"Showing {count(len(chosen))} of {count(run.n_generated)} generated samples"
        + (
            ", a few of every class"
            if gen_labels is not None and len(chosen) < run.n_generated
            else ""
        )
        + f", each with its top {shown_k} of k = {run.k} contributors. Bars show each "
        "contributor's share of the sample's credit. Every match is in "
        '<a href="../attributions.parquet">attributions.parquet</a>.'
    )
    if near_copy is not None:
        flagged = int(run.attributions["flag"].to_numpy().reshape(-1, run.k).any(axis=1).sum())
        rec = run.run.get("near_copy") or {}
        space = rec.get("space", "run") if rec.get("threshold") == near_copy else "run"
        where = "" if space == "run" else f" in {esc(str(space))} copy-detection descriptors"
        note += (
            f" Matches at a distance of at most {num(near_copy, fixed=True)}{where} are flagged "
            f"as near copies: {count(flagged)} generated samples have one."
        )
    parts = ['<h2 id="samples">Generated samples and their contributors</h2>']
    parts.append(f'<p class="note">{note}</p>')
    for j in chosen:
        j = int(j)
        rows = run.matches(j).head(shown_k)
        gid = str(run.generated_ids[j])
        q = float(rows["quality"].iloc[0])
        label = "" if gen_labels is None else f" · class {esc(_name(gen_labels[j], names))}"
        items = []
        for r in rows.itertuples(index=False):
            tid, row = str(r.train_id), int(r.train_row)
            flagged = bool(r.flag)
            tlabel = "" if train_labels is None else f" · {esc(_name(train_labels[row], names))}"
            items.append(
                f'<li class="contrib{" near-copy" if flagged else ""}" data-train-id="{esc(tid)}"'
                f' data-credit="{float(r.credit)!r}" data-distance="{float(r.distance)!r}">'
                f'<span class="rank">{r.rank}</span>{_item_media(train, tid, row)}'
                f'<div class="score">{bar(r.credit / q if q > 0 else 0.0)}'
                f'<b class="credit">{num(r.credit)}</b> <span class="d">d = '
                f'<span class="distance">{num(r.distance, fixed=True)}</span></span>'
                f"{' <span class=flag>near copy</span>' if flagged else ''}"
                f'<div class="who"><code>{esc(tid)}</code>{tlabel}</div></div></li>'
            )
        parts.append(
            f'<section class="sample" id="g-{j}" data-generated-id="{esc(gid)}">'
            f'<div class="gen">{_item_media(gen, gid, j, big=True)}<code>{esc(gid)}</code>'
            f'<br>quality <span class="quality">{num(q, 3)}</span>{label}</div>'
            f'<ol class="contributors">{"".join(items)}</ol></section>'
        )
    return "\n".join(parts)


def items(
    run: d.RunData, train: Media, names: dict[Any, str], n: int, near_copy: float | None
) -> str:
    """Most and least valuable training items, the value distribution, the Lorenz curve."""
    values = run.values["value"].to_numpy()
    matched = int(np.count_nonzero(run.values["n_matches"].to_numpy()))
    zero = int(np.count_nonzero(values == 0))
    g = d.gini(values)
    att = run.attributions
    first = att["distance"].to_numpy()[:: run.k]
    others = att.loc[att["rank"] > 1, "distance"].to_numpy()
    parts = [
        '<h2 id="items">Training items</h2>',
        cards(
            [
                (
                    "items matched by a generated sample",
                    f"{count(matched)} ({pct(matched / run.n_train)})",
                ),
                ("items with no credit at all", f'<span id="zero-credit">{count(zero)}</span>'),
                ("Gini coefficient of the values", f'<span id="gini">{g:.3f}</span>'),
                ("total credit handed out", num(values.sum(), 3)),
            ]
        ),
        '<div class="plots">'
        + img(plots.value_histogram(values), "value histogram", "plot")
        + img(plots.lorenz_curve(*d.lorenz(values), g), "Lorenz curve", "plot")
        + img(plots.distance_histogram(first, others, near_copy), "distances", "plot")
        + "</div>",
        f'<p class="note">The {count(n)} most and least valuable items; all {count(run.n_train)} '
        'are in <a href="../values.parquet">values.parquet</a>. "Least valuable" lists the '
        "lowest values above zero.</p>",
    ]
    best = _items_table(d.most_valuable(run.values, n), train, names, values.max(), "most")
    worst = _items_table(d.least_valuable(run.values, n), train, names, values.max(), "least")
    parts.append(
        f'<div class="cols"><div><h3>Most valuable</h3>{best}</div>'
        f"<div><h3>Least valuable (with credit)</h3>{worst}</div></div>"
    )
    return "\n".join(parts)


def _items_table(
    rows: pd.DataFrame, media: Media, names: dict[Any, str], top: float, which: str
) -> str:
    extra = [c for c in ("label", "contributor") if c in rows]
    head = ["rank", "", "train id", "value", "", "matches", *extra]
    body = []
    for row in rows.itertuples():
        tid = str(row.train_id)
        body.append(
            [
                f'<td class="num">{row.rank}</td>',
                _item_media(media, tid, int(row.Index)),
                f"<code>{esc(tid)}</code>",
                num_cell(row.value, attr=f'data-value="{float(row.value)!r}"'),
                bar(row.value / top if top > 0 else 0),
                f'<td class="num">{row.n_matches}</td>',
                *(esc(_name(getattr(row, c), names)) for c in extra),
            ]
        )
    ids = rows["train_id"].astype(str).tolist()
    return table(head, body, f"items {which}", lambda i: f'data-train-id="{esc(ids[i])}"')


def contributors(run: d.RunData, n: int) -> str:
    if "contributor" not in run.values:
        return ""
    t = d.contributor_table(run.values)
    head = ["#", "contributor", "credit", "share", "", "items", "matched"]
    top = t.head(n)
    body = [
        [
            f'<td class="num">{i + 1}</td>',
            f"<code>{esc(r.group)}</code>",
            num_cell(r.credit, attr=f'data-credit="{float(r.credit)!r}"'),
            f'<td class="num">{pct(r.share)}</td>',
            bar(r.share / t["share"].iloc[0] if t["share"].iloc[0] > 0 else 0),
            f'<td class="num">{count(r.items)}</td>',
            f'<td class="num">{count(r.matched)}</td>',
        ]
        for i, r in enumerate(top.itertuples())
    ]
    groups = top["group"].astype(str).tolist()
    note = (
        f"Top {count(len(top))} of {count(len(t))} contributors by total credit; "
        "per item in values.parquet."
    )
    return f'<h2 id="contributors">Contributors</h2><p class="note">{note}</p>' + table(
        head, body, "leaderboard", lambda i: f'data-contributor="{esc(groups[i])}"'
    )


def classes(run: d.RunData, gen_labels: np.ndarray | None, names: dict[Any, str]) -> str:
    if run.train_labels is None:
        return ""
    t = d.class_table(run.values)
    label_names = [_name(v, names) for v in t["group"]]
    parts = ['<h2 id="classes">Classes</h2>']
    plot_row = [
        img(
            plots.class_credit(label_names, t["share"], t["items"] / t["items"].sum()),
            "credit per class",
            "plot",
        )
    ]
    if gen_labels is not None:
        rows, cols, shares = d.class_mix(run, gen_labels)
        if len(rows) <= 60 and len(cols) <= 60:
            rn, cn = [_name(v, names) for v in rows], [_name(v, names) for v in cols]
            plot_row.append(img(plots.class_mix(rn, cn, shares), "class mix", "plot"))
    parts.append('<div class="plots">' + "".join(plot_row) + "</div>")
    top = float(t["share"].max()) or 1.0
    body = [
        [esc(name), num_cell(r.credit), f'<td class="num">{pct(r.share)}</td>', bar(r.share / top),
         f'<td class="num">{count(r.items)}</td>', f'<td class="num">{count(r.matched)}</td>']
        for name, r in zip(label_names, t.itertuples(), strict=True)
    ]  # fmt: skip
    if len(body) > 100:
        parts.append(f'<p class="note">The 100 of {count(len(body))} classes with most credit.</p>')
    head = ["class", "credit", "share", "", "items", "matched"]
    parts.append(table(head, body[:100], "class-table"))
    return "\n".join(parts)


def _name(label: Any, names: dict[Any, str]) -> str:
    key = label.item() if isinstance(label, np.generic) else label
    return names.get(key, str(key))
