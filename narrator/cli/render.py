"""What the command prints: the progress bar, the summary and estimate tables, flags.

Tables go to stdout; failures, flags and the closing totals line go to stderr. Every
name, title and message printed here, and every log line (:class:`ShownFormatter`),
passes :func:`~narrator.util.sanitize.shown` first: a file name holding a terminal
escape or a line break is shown, never obeyed.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Sequence

from tqdm import tqdm

from ..estimate import Estimate, format_cost
from ..run.batch import totals as run_totals
from ..run.pipeline import DocumentReport, Flag, ProgressEvent, RunReport
from ..run.status import Status
from ..util.sanitize import shown

__all__ = [
    "ProgressBar", "ShownFormatter", "flag_line", "format_seconds", "print_estimate",
    "print_summary", "print_unread", "shorten", "table",
]  # fmt: skip


class ShownFormatter(logging.Formatter):
    """Log lines as :func:`~narrator.util.sanitize.shown` writes them."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return shown(super().formatMessage(record))


class ProgressBar:
    """Turns progress events into a tqdm bar on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.bar: tqdm[None] | None = None
        self.quiet = quiet
        self.characters = 0

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "planned":
            self.bar = tqdm(
                total=event.chunks,
                unit="chunk",
                desc="narrating",
                disable=True if self.quiet else None,
                dynamic_ncols=True,
            )
            self.total_chars = event.characters
        elif event.kind == "chunk" and self.bar is not None:
            self.characters += event.characters
            self.bar.set_postfix_str(
                f"{self.characters:,}/{self.total_chars:,} chars", refresh=False
            )
            self.bar.update(event.chunks)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def shorten(text: str, width: int = 60) -> str:
    # The end of a path or URL tells documents apart; the start is often shared.
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def table(rows: Sequence[Sequence[str]], right: Sequence[int]) -> list[str]:
    """Rows as aligned text; columns whose index is in ``right`` are right-aligned.
    Cells are shown as :func:`~narrator.util.sanitize.shown` writes them."""
    rows = [[shown(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _documents(n: int) -> str:
    return "1 document" if n == 1 else f"{n} documents"


def print_summary(run: RunReport) -> None:
    """The table of documents on stdout; failures and the totals on stderr."""
    totals = run_totals(run)
    rows = [("document", "status", "chunks", "characters", "audio", "flagged", "output")]
    for doc in run.documents:
        audio = format_seconds(doc.audio_seconds) if doc.output and doc.ok else "-"
        if doc.status == Status.SKIPPED:
            where = doc.errors[0] if doc.errors else ""  # why: reported once, here
        elif doc.ok:
            where = doc.files[0] if len(doc.files) > 1 else doc.output
        else:
            where = ""
        rows.append(
            (
                shorten(doc.input),
                doc.status,
                str(doc.chunks),
                f"{doc.billing_characters:,}",
                audio,
                str(len(doc.flagged)),
                where,
            )
        )
        if doc.ok and len(doc.files) > 1:  # a split book: each part on its own line
            rows += [("", "", "", "", "", "", part) for part in doc.files[1:]]
    if len(run.documents) > 1:  # the sums of the rows above, as in the JSON's totals
        rows.append(
            (
                f"total ({_documents(len(run.documents))})",
                "",
                str(totals["chunks"]),
                f"{totals['billing_characters']:,}",
                format_seconds(totals["audio_seconds"]),
                str(totals["flagged"]),
                "",
            )
        )
    if run.documents:
        print("\n".join(table(rows, right=(2, 3, 4, 5))))
    for doc in run.documents:
        for warning in doc.warnings:
            print(f"WARNING: {doc.input}: {warning}", file=sys.stderr)
    for doc in run.documents:
        for flag in doc.flagged:
            print(shown(f"FLAGGED: {doc.input}: {flag_line(flag)}"), file=sys.stderr)
    for doc in run.documents:
        # Documents stopped with the run are in the table; the run's one line says why.
        if doc.status == Status.FAILED or (doc.status == Status.STOPPED and run.stopped is None):
            first = doc.errors[0] if doc.errors else ""
            print(shown(f"{doc.status.upper()}: {doc.input}: {first}"), file=sys.stderr)
    current = f", {totals['up_to_date']} up to date" if totals["up_to_date"] else ""
    redone = f", {run.qa_resynthesized} redone for bad audio" if run.qa_resynthesized else ""
    respelled = sum(doc.respelled_chunks for doc in run.documents)
    lexicon = f"; the lexicon respelled {respelled} chunks" if respelled else ""
    print(
        f"{totals['done']} of {len(run.documents)} audiobooks written{current}; "
        f"{run.requests} requests, {run.retries} retries{redone}, {run.seconds:.1f} s{lexicon}",
        file=sys.stderr,
    )


def print_unread(reports: Sequence[DocumentReport]) -> None:
    """One line on stderr for each input that could not be read, and why."""
    for report in reports:
        line = f"{report.status.upper()}: {report.input}: {report.errors[0]}"
        print(shown(line), file=sys.stderr)


def flag_line(flag: Flag) -> str:
    """One flagged segment: where to listen, what is wrong, and its text."""
    at = f"at {format_seconds(flag.start)}, " if flag.start is not None else ""
    text = " ".join(flag.text.split())
    text = text if len(text) <= 50 else text[:49] + "…"
    return (
        f"chunk {flag.chunk} ({at}{flag.attempts} attempts): {flag.kind}: {flag.reason}: {text!r}"
    )


def _cost(result: Estimate, usd: float) -> str:
    return "free" if result.price_per_10k_chars == 0 else format_cost(usd)


def print_estimate(result: Estimate) -> None:
    rows = [("document", "lang", "chunks", "characters", "cost", "time")]
    for doc in result.documents:
        rows.append(
            (
                shorten(doc.input),
                doc.lang,
                str(doc.chunks),
                f"{doc.billing_characters:,}",
                _cost(result, doc.cost),
                format_seconds(doc.seconds),
            )
        )
    rows.append(
        (
            f"total ({_documents(len(result.documents))})",
            "",
            str(result.chunks),
            f"{result.billing_characters:,}",
            _cost(result, result.cost),
            format_seconds(result.seconds),
        )
    )
    print("\n".join(table(rows, right=(2, 3, 4, 5))))
    if result.voices:
        voices = [("voice", "requests", "characters")]
        voices += [(v.voice, str(v.chunks), f"{v.billing_characters:,}") for v in result.voices]
        print("\n".join(table(voices, right=(1, 2))))
    price = (
        "nothing to pay (the voice runs offline)"
        if result.price_per_10k_chars == 0
        else f"{format_cost(result.price_per_10k_chars)} per 10,000 billing characters "
        "(--price-per-10k-chars)"
    )
    rate = "no rate limit" if math.isinf(result.rpm) else f"--rpm {result.rpm:g}"
    print(
        f"{result.chunks} requests, no retries counted. Assumes {price} and "
        f"{result.latency:g} s per request (--assume-latency), at {rate} and "
        f"--concurrency {result.concurrency}; chunks already in the cache are counted too."
    )
