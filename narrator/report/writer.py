"""The run report as a file: JSON (the data, :mod:`narrator.run.batch`) or one HTML page.

The public entry: :func:`write_report` picks the form by the file's suffix. The parts
live beside it, one concern each: the JSON and reading it back in
:mod:`narrator.report.data`, the page in :mod:`narrator.report.page`, its inline-SVG
timeline charts in :mod:`narrator.report.charts` (and the values as the page writes them
in :mod:`narrator.report.format`).
"""

from __future__ import annotations

from pathlib import Path

from ..run.pipeline import RunReport
from ..settings import Settings
from .data import RunContext, context_of, read_report, report_json
from .page import render_html

__all__ = [
    "RunContext", "context_of", "read_report", "render_html", "report_json", "write_report",
]  # fmt: skip


def write_report(
    path: Path, run: RunReport, settings: Settings | None = None, *, command: str | None = None
) -> None:
    """Write the report to ``path``: HTML for ``.html``/``.htm``, else JSON."""
    context = context_of(settings, command=command)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".html", ".htm"):
        text = render_html(run, context, folder=path.parent)
    else:
        text = report_json(run, context, settings)
    path.write_text(text, encoding="utf-8")
