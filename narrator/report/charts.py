"""The pool's timeline on the report page: small inline-SVG charts (requests started,
in flight, the pace and its cuts after a 429, 429s, retries), with no script."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..synth.timeline import Series
from .data import RunContext
from .format import as_clock, esc

__all__: list[str] = []


_CHART_W, _CHART_H = 720, 56


def _bars(values: Sequence[float], top: float, cls: str) -> str:
    width = _CHART_W / len(values)
    rects = []
    for i, value in enumerate(values):
        if value:
            height = max(1.0, value / top * _CHART_H)
            rects.append(
                f'<rect x="{i * width:.1f}" y="{_CHART_H - height:.1f}" '
                f'width="{max(width - 0.5, 0.5):.1f}" height="{height:.1f}"/>'
            )
    return f'<g class="{cls}">{"".join(rects)}</g>'


def _steps(values: Sequence[float | None], top: float) -> str:
    """A step line on a log scale: a cut from 6,000 to 300 a minute and the climb back
    from 250 to 300 both show."""
    width = _CHART_W / len(values)
    points: list[str] = []
    for i, value in enumerate(values):
        if value is None:
            continue
        y = _CHART_H - math.log1p(value) / math.log1p(top) * (_CHART_H - 2)
        points.append(f"{i * width:.1f},{y:.1f} {(i + 1) * width:.1f},{y:.1f}")
    return f'<polyline class=line points="{" ".join(points)}"/>' if points else ""


def _chart(title: str, summary: str, body: str, top: float, series: Series) -> str:
    ticks = "".join(
        f'<text x="{x:.0f}" y="{_CHART_H + 12}" text-anchor="{a}">{as_clock(t)}</text>'
        for x, t, a in (
            (0, 0, "start"),
            (_CHART_W / 2, series.seconds / 2, "middle"),
            (_CHART_W, series.seconds, "end"),
        )
    )
    return (
        f"<figure class=chart><figcaption><b>{esc(title)}</b> {esc(summary)}</figcaption>"
        f'<svg viewBox="0 -4 {_CHART_W} {_CHART_H + 20}" role="img" '
        f'aria-label="{esc(title)}: {esc(summary)}"><title>{esc(title)}</title>'
        f'<line class=axis x1="0" y1="{_CHART_H}" x2="{_CHART_W}" y2="{_CHART_H}"/>'
        f'<text class=top x="{_CHART_W}" y="6" text-anchor="end">{top:.0f}</text>'
        f"{body}{ticks}</svg></figure>"
    )


def timeline_html(series: Series, context: RunContext) -> str:
    per = f"{series.bucket} s" if series.bucket < 60 else f"{series.bucket // 60} min"
    charts = []
    top: float = max(max(series.starts), 1)
    charts.append(
        _chart(
            f"Requests started per {per}",
            f"{sum(series.starts):,} in all, at most {max(series.starts)} per {per}",
            _bars(series.starts, top, "bars"),
            top,
            series,
        )
    )
    limit = context.concurrency or 0
    top = max(max(series.peak), limit, 1)
    guide = ""
    if limit:
        y = _CHART_H - limit / top * _CHART_H
        guide = f'<line class=limit x1="0" y1="{y:.1f}" x2="{_CHART_W}" y2="{y:.1f}"/>'
    charts.append(
        _chart(
            "Requests in flight",
            f"the most at once in each {per}: up to {max(series.peak)}"
            + (f" of {limit} allowed" if limit else ""),
            guide + _bars(series.peak, top, "bars"),
            top,
            series,
        )
    )
    rates = [r for r in series.rpm if r is not None]
    if rates:
        top = max(rates) * 1.1
        cuts = sum(series.cuts)
        allowed = f" (allowed {context.rpm:g})" if context.rpm else ""
        charts.append(
            _chart(
                "Pace (requests per minute, log scale)",
                f"from {rates[0]:.0f} to {rates[-1]:.0f}{allowed}, lowest {min(rates):.0f}; "
                f"{cuts} cut{'s' if cuts != 1 else ''} after a 429 (red)",
                _steps(series.rpm, top) + _bars(series.cuts, max(max(series.cuts), 1), "cuts"),
                top,
                series,
            )
        )
    for name, values, cls in (
        ("Answered 429 (rate limited)", series.throttled, "bars warn"),
        ("Retries", series.retries, "bars warn"),
    ):
        top = max(max(values), 1)
        charts.append(
            _chart(
                f"{name} per {per}",
                f"{sum(values):,} in all",
                _bars(values, top, cls),
                top,
                series,
            )
        )
    return "\n".join(charts)
