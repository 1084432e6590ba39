"""What a run reports: per document, per run, and the progress events on the way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..book.encode import ChapterMark
from ..chunks.split import Chunk
from ..errors import StopRun
from ..inputs.documents import Document
from ..synth.jobs import Outcome
from ..synth.quality import Verdict
from ..synth.timeline import Series
from .status import Status

__all__ = [
    "DocumentReport",
    "Flag",
    "ProgressCallback",
    "ProgressEvent",
    "RunReport",
    "Voiced",
    "Work",
    "failed_report",
    "flags_of",
    "stopped_report",
    "voices_of",
]


@dataclass(frozen=True, slots=True)
class Work:
    """One document and where its audiobook goes."""

    document: Document
    output: Path


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """What the progress callback receives.

    ``kind`` is ``planned`` (totals for the run), ``chunk`` (one chunk finished, or
    failed) or ``document`` (an audiobook was written, or a document failed).
    """

    kind: str
    chunks: int = 0
    characters: int = 0
    cached: bool = False
    report: DocumentReport | None = None


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True, slots=True)
class Flag:
    """A segment the quality gate still found bad after its last attempt, kept in the book.

    ``chunk`` counts from 1; ``start`` is where it begins in the finished audiobook, in
    seconds (None when the audiobook was not written); ``measured`` and ``expected`` are
    seconds of speech.
    """

    chunk: int
    text: str
    kind: str  # silent, cut or runaway
    reason: str
    measured: float
    expected: float
    attempts: int
    start: float | None = None

    @classmethod
    def of(cls, chunk: Chunk, verdict: Verdict, *, attempts: int, start: float | None) -> Flag:
        """The flag of ``chunk`` judged bad by ``verdict``, figures rounded for reports."""
        return cls(
            chunk=chunk.index + 1,
            text=chunk.text,
            kind=verdict.kind,
            reason=verdict.reason,
            measured=round(verdict.measured, 2),
            expected=round(verdict.expected, 2),
            attempts=attempts,
            start=None if start is None else round(start, 3),
        )


@dataclass(frozen=True, slots=True)
class Voiced:
    """Who speaks how much in one chapter: a speaker ("" the narrator, "?" speech nobody
    could be given, else a cast member), the voice, chunks and billing characters."""

    chapter: int
    speaker: str
    voice: str
    chunks: int
    characters: int


def voices_of(chunks: Sequence[Chunk], voice: str) -> tuple[Voiced, ...]:
    """Each chapter's speakers, when a cast gave voices out (else none: one voice)."""
    if all(c.speaker == "" and c.voice in ("", voice) for c in chunks):
        return ()
    counts: dict[tuple[int, str, str], list[int]] = {}
    for chunk in chunks:
        count = counts.setdefault((chunk.chapter, chunk.speaker, chunk.voice or voice), [0, 0])
        count[0] += 1
        count[1] += chunk.billing_chars
    return tuple(Voiced(*key, n, chars) for key, (n, chars) in counts.items())


@dataclass(frozen=True, slots=True)
class DocumentReport:
    """How one document went. ``status``: done, up-to-date (made before from the same
    text and settings), failed, skipped (nothing to narrate) or stopped."""

    input: str
    output: str
    title: str
    status: Status
    chunks: int
    billing_characters: int
    audio_seconds: float
    requests: int
    retries: int
    cached_chunks: int
    errors: tuple[str, ...] = ()
    chapters: tuple[ChapterMark, ...] = ()  # each chapter's title and start, in seconds
    files: tuple[str, ...] = ()  # the audio files written: one, or one per part
    flagged: tuple[Flag, ...] = ()  # segments the quality gate flagged
    respelled_chunks: int = 0  # chunks a pronunciation lexicon changed
    voices: tuple[Voiced, ...] = ()  # who speaks how much per chapter, with a cast
    # What was left out or done another way than asked, though the book was made: a
    # chapter the reader could not parse, text the sentence splitter failed on.
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status.ok


@dataclass(frozen=True, slots=True)
class RunReport:
    """How a whole run went."""

    documents: tuple[DocumentReport, ...]
    requests: int
    retries: int
    throttled: int
    resynthesized: int
    seconds: float
    stopped: str | None = None
    rate_changes: tuple[tuple[float, float], ...] = ()
    stop_error: StopRun | None = field(default=None, compare=False, repr=False)
    qa_resynthesized: int = 0  # bad segments synthesized again (each billed again)
    qa_budget_spent: bool = False
    timeline: Series | None = None  # the pool's requests, 429s and retries over time

    @property
    def ok(self) -> bool:
        return self.stopped is None and all(d.ok for d in self.documents)


def flags_of(
    chunks: Sequence[Chunk], outcomes: Sequence[Outcome], starts: Sequence[float]
) -> tuple[Flag, ...]:
    """The flagged segments of a document, with their start in its audiobook if known."""
    flags = []
    for n, (chunk, outcome) in enumerate(zip(chunks, outcomes, strict=False)):
        if not outcome.flagged or outcome.verdict is None:
            continue
        start = starts[n] if n < len(starts) else None
        flags.append(Flag.of(chunk, outcome.verdict, attempts=outcome.attempts, start=start))
    return tuple(flags)


def failed_report(work: Work, error: str) -> DocumentReport:
    """The report of a document that failed before any of it was sent."""
    return DocumentReport(
        input=work.document.source, output=str(work.output), title=work.document.title,
        status=Status.FAILED, chunks=0, billing_characters=0, audio_seconds=0.0, requests=0,
        retries=0, cached_chunks=0, errors=(error,),
    )  # fmt: skip


def stopped_report(
    work: Work, chunks: Sequence[Chunk], warnings: tuple[str, ...] = ()
) -> DocumentReport:
    """The report of a document the run stopped before it finished."""
    return DocumentReport(
        input=work.document.source,
        output=str(work.output),
        title=work.document.title,
        status=Status.STOPPED,
        chunks=len(chunks),
        billing_characters=sum(c.billing_chars for c in chunks),
        audio_seconds=0.0,
        requests=0,
        retries=0,
        cached_chunks=0,
        errors=("the run stopped before this document finished",),
        warnings=warnings,
    )
