"""HTML building blocks of the report: the page shell, its style sheet and small helpers.

Every string that comes from data (ids, text, labels, paths) goes through ``esc``; the page
carries a Content-Security-Policy that forbids any network access, so a stray external URL
fails loudly in the browser instead of leaking a request.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
:root { --accent: #3b6fb6; --muted: #6b7785; --line: #dde3ea; --bg: #f6f8fa; --flag: #c0392b; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2733;
       margin: 0; background: #fff; }
header.top { background: var(--bg); border-bottom: 1px solid var(--line); padding: 18px 28px; }
main { padding: 8px 28px 40px; max-width: 1500px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line);
     padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
nav a { margin-right: 14px; }
a { color: var(--accent); }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.note { color: var(--muted); font-size: 13px; margin: 4px 0 10px; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 2px 24px;
         margin: 10px 0; }
.facts div { padding: 3px 0; border-bottom: 1px dotted var(--line); }
.facts b { display: inline-block; min-width: 118px; color: var(--muted); font-weight: 500; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { background: var(--bg); border: 1px solid var(--line); border-radius: 6px;
        padding: 8px 14px; }
.card .big { font-size: 20px; font-weight: 600; display: block; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.plots img { border: 1px solid var(--line); border-radius: 4px; max-width: 100%; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: middle; }
th { color: var(--muted); font-weight: 500; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cols { display: flex; flex-wrap: wrap; gap: 32px; }
img.thumb { width: 48px; height: 48px; object-fit: contain; image-rendering: pixelated;
            background: #000; border-radius: 3px; display: block; }
img.thumb.big { width: 84px; height: 84px; }
.bar { background: #e8edf3; height: 7px; border-radius: 4px; overflow: hidden; min-width: 60px; }
.bar span { display: block; height: 100%; background: var(--accent); }
.sample { display: flex; gap: 18px; padding: 12px 0; border-bottom: 1px solid var(--line); }
.sample .gen { width: 150px; flex: none; font-size: 12px; }
.sample .gen code { word-break: break-all; }
ol.contributors { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap;
                  gap: 10px; }
ol.contributors li { width: 92px; font-size: 11px; }
ol.contributors li .bar { margin: 4px 0 2px; }
ol.contributors li .d { display: block; }
ol.contributors li code { font-size: 10px; word-break: break-all; }
.text-run .sample { flex-direction: column; gap: 6px; }
.text-run .sample .gen { width: auto; }
.text-run ol.contributors { flex-direction: column; gap: 6px; }
.text-run ol.contributors li { width: auto; display: grid; gap: 2px 12px; align-items: center;
                               grid-template-columns: 2.2em 1fr 230px; }
.text-run ol.contributors li .d { display: inline; }
blockquote.snippet, p.snippet { margin: 0; white-space: pre-wrap; font-size: 13px; }
blockquote.snippet { border-left: 3px solid var(--accent); padding: 4px 10px;
                     background: var(--bg); }
p.snippet { color: #2b3743; }
.flag { color: #fff; background: var(--flag); border-radius: 3px; padding: 0 4px; font-size: 10px; }
li.near-copy img.thumb { outline: 2px solid var(--flag); }
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(x: float, digits: int = 4, fixed: bool = False) -> str:
    """A number for people: fixed digits for ordinary sizes, scientific for huge ones and, unless
    ``fixed`` (distances, where 1e-9 is just 0), for tiny ones."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return f"{x:g}" if x else "0"
    if abs(x) >= 1e7 or (not fixed and abs(x) < 10 ** (-digits)):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}f}"


def count(n: int) -> str:
    return f"{int(n):,}"


def pct(x: float) -> str:
    return f"{100 * float(x):.1f} %"


def bar(fraction: float) -> str:
    width = 100 * min(max(float(fraction), 0.0), 1.0) if math.isfinite(float(fraction)) else 0
    return f'<div class="bar"><span style="width:{width:.1f}%"></span></div>'


def img(uri: str, alt: str, cls: str = "thumb") -> str:
    return f'<img class="{cls}" src="{uri}" alt="{esc(alt)}" title="{esc(alt)}">'


def facts(pairs: Iterable[tuple[str, str]]) -> str:
    """A grid of label/value pairs; values are HTML already (escape data before)."""
    rows = "".join(f"<div><b>{esc(k)}</b> {v}</div>" for k, v in pairs)
    return f'<div class="facts">{rows}</div>'


def cards(pairs: Iterable[tuple[str, str]]) -> str:
    body = "".join(
        f'<div class="card"><span class="big">{v}</span>{esc(k)}</div>' for k, v in pairs
    )
    return f'<div class="cards">{body}</div>'


def table(
    head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "", row_attrs: Any = None
) -> str:
    """A table; cells are HTML already. ``row_attrs`` gives each row's attributes, or None."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    attrs = row_attrs or (lambda i: "")
    body = "".join(
        f"<tr {attrs(i)}>" + "".join(_cell(c) for c in row) + "</tr>" for i, row in enumerate(rows)
    )
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _cell(content: str) -> str:
    if content.startswith("<td"):
        return content
    return f"<td>{content}</td>"


def num_cell(x: float, digits: int = 4, attr: str = "") -> str:
    return f'<td class="num" {attr}>{num(x, digits)}</td>'


def page(title: str, header: str, body: str, text_run: bool) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style></head>\n"
        f'<body class="{"text-run" if text_run else "image-run"}">\n'
        f'<header class="top">{header}</header>\n<main>\n{body}\n</main></body></html>\n'
    )
