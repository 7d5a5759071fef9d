"""The HTML report of a run: ``write_report(RUN)`` writes ``RUN/report/index.html``.

One self-contained page (thumbnails and plots embedded, no network) with the run's settings,
each shown generated sample with its top contributors and credit bars, the most and least
valuable training items, the distribution of values, contributor and class tables, and the
run's evaluation results.
"""

from gmvaluator.report.build import (
    Report,
    ReportConfig,
    mark_stale,
    render_report,
    write_report,
)
from gmvaluator.report.data import RunData, gini, lorenz, read_run

__all__ = [
    "Report",
    "ReportConfig",
    "RunData",
    "gini",
    "lorenz",
    "mark_stale",
    "read_run",
    "render_report",
    "write_report",
]
