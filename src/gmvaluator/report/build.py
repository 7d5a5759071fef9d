"""Write ``RUN/report/index.html``: one self-contained page about a finished run.

Pictures come from the run's own sources (only the items shown are decoded) and plots are
embedded PNGs, so the page opens without a network. Large runs show their top N items and
samples with a note, and the page is kept under ``max_bytes`` by showing fewer if needed; the
full data stays in the Parquet files the page links to.
"""

from __future__ import annotations

import importlib.util
import math
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from gmvaluator.errors import InputError, MissingDependencyError, check_param
from gmvaluator.files import atomic_path, write_json
from gmvaluator.progress import bar
from gmvaluator.report import data as d
from gmvaluator.report import sections
from gmvaluator.report.evaluation import evaluations
from gmvaluator.report.media import Media, MediaSet
from gmvaluator.report.page import page


@dataclass(frozen=True)
class ReportConfig:
    """How much a report shows. ``near_copy`` None shows the run's own near-copy flags; a
    distance flags the matches at or below it instead."""

    samples: int = 40
    items: int = 20
    contributors: int = 25
    max_contributors: int = 10
    near_copy: float | None = None
    max_bytes: int = 25_000_000

    def __post_init__(self) -> None:
        for name in ("samples", "items", "contributors", "max_contributors", "max_bytes"):
            value = getattr(self, name)
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            check_param("ReportConfig", name, value, ok, "an int in the range [1, inf)")
        nc = self.near_copy
        ok = nc is None or (isinstance(nc, int | float) and math.isfinite(nc) and nc >= 0)
        check_param("ReportConfig", "near_copy", nc, ok, "None or a finite float >= 0")


@dataclass(frozen=True)
class Report:
    path: Path
    n_bytes: int
    samples_shown: int
    seconds: float


def write_report(
    run_dir: str | Path, cfg: ReportConfig | None = None, *, overwrite: bool = False,
    progress: bool = False,
) -> Report:  # fmt: skip
    """Write ``RUN/report/index.html`` (and ``report.json`` with its settings) for a run;
    ``progress``: a bar of its steps."""
    t0 = time.perf_counter()
    missing = [m for m in ("matplotlib", "jinja2") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"the HTML report needs {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed. Install it with: "
            "pip install 'gmvaluator[report]'"
        )
    cfg = cfg or ReportConfig()
    with bar(len(REPORT_STEPS), "report", progress=progress, unit="step") as steps:
        steps.set_postfix_str(REPORT_STEPS[0])
        run = d.read_run(run_dir)
        out = run.run_dir / "report" / "index.html"
        if out.exists() and not overwrite:
            raise InputError(f"{out} exists. Pass --overwrite to replace it.")
        html, shown = render_report(run, cfg, steps)
        steps.set_postfix_str(REPORT_STEPS[-1])
        data = html.encode("utf-8")
        with atomic_path(out) as tmp:
            tmp.write_bytes(data)
            tmp.chmod(0o644)  # a page to share, unlike the private temporary file
        steps.update(1)
    report = Report(out, len(data), shown, time.perf_counter() - t0)
    meta = {"settings": asdict(cfg), "bytes": len(data), "samples_shown": shown}
    write_json(out.with_name("report.json"), {**meta, "seconds": report.seconds})
    return report


#: What ``write_report``'s bar shows, one step after another.
REPORT_STEPS = ("reading the run", "opening its sources", "sections", "samples", "writing")


def render_report(run: d.RunData, cfg: ReportConfig, steps: Any = None) -> tuple[str, int]:
    """The page and how many generated samples it shows, within ``cfg.max_bytes``
    (``steps``: a progress bar of ``REPORT_STEPS``, moved on as each is done)."""

    def step(n: int) -> None:
        if steps is not None:
            steps.update(1)
            steps.set_postfix_str(REPORT_STEPS[n])

    step(1)
    shown = _gather(run, cfg.near_copy)
    notes = [m.note for m in (shown.train, shown.gen) if m.note]
    step(2)
    fixed = _fixed_sections(shown, cfg)
    step(3)
    text_run = "text" in (shown.train.kind, shown.gen.kind)
    shrunk = False
    while True:
        chosen = d.pick_samples(run.n_generated, cfg.samples, shown.gen_labels)
        body = sections.samples(
            run,
            chosen,
            shown.train,
            shown.gen,
            shown.gen_labels,
            shown.names,
            shown.near_copy,
            cfg.max_contributors,
        )
        html = _assemble(run, notes, body, fixed, text_run)
        if len(html.encode("utf-8")) <= cfg.max_bytes or cfg.samples == 1:
            step(4)
            return html, len(chosen)
        if not shrunk:
            notes = [
                *notes,
                f"fewer samples are shown to keep the page under {cfg.max_bytes:,} bytes",
            ]
            shrunk = True
        cfg = replace(cfg, samples=max(1, cfg.samples // 2))


def _gather(run: d.RunData, near_copy: float | None) -> d.PageInputs:
    """Open the run's sources and mark its near copies: what every section draws on."""
    text_column = run.config.get("text_column")
    if run.config.get("embedder") == "precomputed":
        # the training source is only vectors: nothing to show, and maybe millions to read
        train = Media(None, "the run valued precomputed embeddings: training items are shown by id")
    else:
        train = Media.open(
            run.config.get("train"), "training", text_column, run.config.get("train_kind")
        )
    batches = [b.get("source") for b in run.run.get("appended") or []]
    gen = MediaSet.open(
        [run.config.get("generated"), *batches],
        "generated",
        text_column,
        run.config.get("generated_kind"),
    )
    gen_labels = gen.labels(run.generated_ids)
    threshold = d.mark_near_copies(run, near_copy)
    names = d.class_names(run.config.get("train"))
    return d.PageInputs(run, train, gen, gen_labels, names, threshold)


def _fixed_sections(shown: d.PageInputs, cfg: ReportConfig) -> str:
    run = shown.run
    return "\n".join(
        [
            sections.items(run, shown.train, shown.names, cfg.items, shown.near_copy),
            sections.contributors(run, cfg.contributors),
            sections.classes(run, shown.gen_labels, shown.names),
            evaluations(run.evaluations),
        ]
    )


def _assemble(run: d.RunData, notes: list[str], samples: str, fixed: str, text_run: bool) -> str:
    title = f"gmvaluator report: {run.run_dir.resolve().name}"
    body = samples + "\n" + fixed
    anchors = re.findall(r'<h2 id="([a-z]+)">', body)
    return page(title, sections.header(run, notes, anchors), body, text_run)


#: The empty banner every page carries; ``mark_stale`` fills it in.
STALE_MARKER = '<div id="stale-banner" class="stale" hidden></div>'


def mark_stale(run_dir: str | Path, reason: str) -> Path | None:
    """Show a banner on the run's report saying it is out of date, and why (``reason``, plain
    text); returns the page marked, or None when the run has no report. The page is otherwise
    left as it was: ``gmvaluator report RUN --overwrite`` brings it up to date."""
    from markupsafe import escape

    out = Path(run_dir) / "report" / "index.html"
    if not out.is_file():
        return None
    html = out.read_text(encoding="utf-8")
    banner = (
        f'<div id="stale-banner" class="stale">This report is out of date: {escape(reason)}. '
        f"Rebuild it with <code>gmvaluator report {escape(str(run_dir))} --overwrite</code>."
        "</div>"
    )
    if STALE_MARKER in html:
        html = html.replace(STALE_MARKER, banner, 1)
    else:  # marked before: the newest reason replaces the older one
        html = re.sub(r'<div id="stale-banner" class="stale">.*?</div>', banner, html, count=1)
    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
        tmp.chmod(0o644)
    return out
