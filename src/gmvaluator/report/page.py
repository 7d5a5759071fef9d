"""The report's HTML: Jinja2 templates (``report/templates``) and the number formats they use.

The templates escape every value they are given, so ids, text, labels and paths from the data
show as text and never run as markup; only the sections' finished HTML enters the page as is.
The page's Content-Security-Policy (``templates/page.html``) forbids any network access, so a
stray external URL fails loudly in the browser instead of leaking a request.
"""

from __future__ import annotations

import functools
import math
from typing import Any


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


def bar_width(fraction: float) -> str:
    """Width in percent of a credit bar filled to ``fraction`` (clipped to [0, 1])."""
    f = float(fraction)
    return f"{100 * min(max(f, 0.0), 1.0) if math.isfinite(f) else 0.0:.1f}"


@functools.cache
def environment() -> Any:
    """The templates' environment: autoescaping, and fails on a name the context lacks."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("gmvaluator.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=num, thousands=count, pct=pct, bar_width=bar_width)
    return env


def render(template: str, **context: Any) -> str:
    """The HTML of ``template`` over ``context``."""
    return str(environment().get_template(template).render(**context))


def page(title: str, header: str, body: str, text_run: bool) -> str:
    """The whole page around a header and a body that the section templates rendered."""
    from markupsafe import Markup

    return str(
        environment()
        .get_template("page.html")
        .render(title=title, header=Markup(header), body=Markup(body), text_run=text_run)
    )
