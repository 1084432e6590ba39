"""A run's plan of each document: its chunks, their segment keys and its book's
fingerprint, made once and handed on to every step that needs them (up to date? the
room it needs, the pool, the book; ``watch``'s budget and queue; ``narrator check``).

A :class:`Planner` holds what every plan of a run shares: the settings, the provider's
limit and count, the lexicons (each file read once) and the casts. A :class:`Plan` splits its
document when its chunks are first asked for, and :meth:`Plan.each_chunk` hands them
out as they are cut, so a caller may send the first before the last is cut.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..chunks.cast import Casting, document_casting
from ..chunks.language import resolve_language
from ..chunks.lexicon import Lexicon, combined
from ..chunks.split import Chunk, iter_chunks
from ..errors import InputError, NarratorError
from ..inputs.documents import Document
from ..inputs.model import bounded
from ..settings import Settings, check_voice, default
from ..store import segment_key
from ..synth.providers import Provider
from ..util.sanitize import clean_line
from .results import DocumentReport, Work, failed_report

__all__ = ["Plan", "Planner", "book_fingerprint", "casting_for"]


class Planner:
    """How one run cuts and keys its documents."""

    def __init__(self, settings: Settings, provider: Provider) -> None:
        self.settings = settings
        self.identity = provider.identity
        # Chunks fit the provider's limit, counted its way, whatever --max-chars says.
        self.max_chars = min(settings.max_chars, provider.max_chars)
        self.count = provider.billing_chars
        self._lexicons: dict[tuple[Path, ...], Lexicon] = {}

    def key(self, chunk: Chunk) -> str:
        """The segment key of ``chunk``'s audio (in its own voice, when a cast gave it
        one): the one place a run computes it."""
        voice = chunk.voice or self.settings.voice
        return segment_key(provider=self.identity, voice=voice, text=chunk.text)

    def lexicon(self, document: Document) -> Lexicon:
        """The lexicon ``document`` is read with (each set of files loaded once)."""
        s = self.settings
        files = combined(s.lexicon, document.source, s.lexicon_override)
        if files not in self._lexicons:
            self._lexicons[files] = Lexicon.load(*files)
        return self._lexicons[files]

    def plan(self, work: Work) -> Plan:
        """The plan of ``work``; its lexicon and cast are read now (a bad one, or an
        unknown voice, refused before anything is sent), its text is split when its
        chunks are first asked for."""
        casting = casting_for(self.settings, work.document.source)
        return Plan(work, self, self.lexicon(work.document), casting)

    def plan_all(
        self,
        works: Sequence[Work | Plan],
        failed: list[tuple[Work, DocumentReport]] | None = None,
        alone: tuple[type[NarratorError], ...] = (InputError,),
        on_chunk: Callable[[Plan, Chunk, str], None] | None = None,
    ) -> list[Plan]:
        """Every document's plan, split (on a worker thread: pysbd takes its time); a
        plan made before (``watch`` weighs the cost of each first) is kept as it is.

        A document that cannot be planned for a reason of its own (``alone``: by default
        its respellings too slow or too large, an :class:`~narrator.errors.InputError`;
        ``watch`` adds a bad lexicon or cast beside it) is left out and added to
        ``failed`` with its report; without ``failed``, the error is raised. ``on_chunk``
        hears of each chunk (with its plan and key) as soon as it is cut, from the
        splitting thread (:mod:`narrator.run.early` sends the first ones at once)."""
        # Every lexicon and cast is read first: a bad one is refused before any chunk
        # is cut (and so before ``on_chunk`` may send one).
        made: list[Plan] = []
        for work in works:
            if isinstance(work, Plan):
                made.append(work)
                continue
            try:
                made.append(self.plan(work))
            except alone as exc:
                if failed is None:
                    raise
                failed.append((work, failed_report(work, str(exc))))
        plans = []
        for plan in made:
            try:
                for chunk, key in plan.each_chunk():  # split now, off the event loop
                    if on_chunk is not None:
                        on_chunk(plan, chunk, key)
            except alone as exc:
                if failed is None:
                    raise
                failed.append((plan.work, failed_report(plan.work, str(exc))))
                continue
            plans.append(plan)
        return plans


class Plan:
    """One document of a run: its chunks, their keys, its book's fingerprint."""

    def __init__(
        self, work: Work, planner: Planner, lexicon: Lexicon, casting: Casting | None = None
    ) -> None:
        self.work = work
        self.planner = planner
        self._lexicon = lexicon
        self._casting = casting
        self._chunks: list[Chunk] = []
        self._keys: list[str] = []
        self._complete = False
        self._fingerprint: str | None = None
        self._warnings: list[str] = []

    @property
    def document(self) -> Document:
        return self.work.document

    @property
    def output(self) -> Path:
        return self.work.output

    def each_chunk(self) -> Iterator[tuple[Chunk, str]]:
        """Every chunk with its segment key, in order, handed out as it is cut (once:
        later calls, and :attr:`chunks`, read what the first one kept). One caller at a
        time: a plan is split by one thread."""
        if self._complete:
            yield from zip(self._chunks, self._keys, strict=True)
            return
        # a split given up half-way starts again
        self._chunks, self._keys, self._warnings = [], [], []
        s = self.planner.settings
        for chunk in iter_chunks(
            self.document,
            max_chars=self.planner.max_chars,
            lang=resolve_language(self.document, s.lang),
            count=self.planner.count,
            lexicon=self._lexicon,
            voice=s.voice,
            casting=self._casting,
            warn=self._warn,
            max_text_chars=s.max_text_bytes,
        ):
            self._chunks.append(chunk)
            self._keys.append(self.planner.key(chunk))
            yield chunk, self._keys[-1]
        self._complete = True

    @property
    def chunks(self) -> list[Chunk]:
        """Every chunk of the document (split now if not yet)."""
        if not self._complete:
            for _ in self.each_chunk():
                pass
        return self._chunks

    @property
    def keys(self) -> list[str]:
        """Each chunk's segment key, in the same order."""
        self.chunks  # noqa: B018 - split first if not yet
        return self._keys

    def _warn(self, message: str) -> None:
        self._warnings.append(clean_line(message))

    @property
    def warnings(self) -> tuple[str, ...]:
        """What its reader left out and where its splitter fell back, for its report."""
        self.chunks  # noqa: B018 - the splitter's come as it splits
        return bounded([*self.document.warnings, *self._warnings])

    @property
    def billing_chars(self) -> int:
        return sum(c.billing_chars for c in self.chunks)

    @property
    def fingerprint(self) -> str:
        """What its audiobook is made from (:func:`book_fingerprint`)."""
        if self._fingerprint is None:
            self._fingerprint = book_fingerprint(
                self.planner.identity, self.planner.settings, self.chunks
            )
        return self._fingerprint


def casting_for(settings: Settings, source: str) -> Casting | None:
    """How a document's voices are given out: its cast files (the settings file's, its
    own, the command line's) with every voice checked, the dialogue voice and speaker
    lines; None when everything is read in the one voice. Raises
    :class:`~narrator.errors.ConfigError` for a bad cast file or an unknown voice."""

    def spell(voice: str) -> str:
        return check_voice(
            settings.provider, voice, model=settings.model, base_url=settings.base_url
        )

    return document_casting(
        source,
        settings.cast,
        settings.cast_override,
        voice=settings.voice,
        dialogue_voice=settings.dialogue_voice,
        speaker_lines=settings.speaker_lines,
        spell=spell,
    )


def book_fingerprint(identity: str, settings: Settings, chunks: Sequence[Chunk]) -> str:
    """What an audiobook is made from: its chunks' texts, chapters and voices, the
    provider (its ``identity``), and every setting but those that only change how fast
    it is made."""
    # Subtitles sit beside the book, not in it: adding or dropping them (or choosing their
    # cues' grain) keeps it current (as None, a book made without them keeps the
    # fingerprint it always had). A read-along book counts only when one is asked for, so
    # books made before it existed stay current too.
    settings = dataclasses.replace(
        settings, audiobook=dataclasses.replace(settings.audiobook, subtitles=None)
    )
    fields = dataclasses.asdict(settings)
    fields["audiobook"].pop("cue")
    if fields["audiobook"]["read_along"] is None:
        fields["audiobook"].pop("read_along")
    made_with = {
        name: str(value)
        for name, value in fields.items()
        if name not in _RUN_ONLY_SETTINGS
        # a cast setting left as it was: a book made before casts existed stays current
        and not (name in _CAST_SETTINGS and value == default(name))
    }
    blob = json.dumps(
        # The written text too where a lexicon respelled it: the subtitles show it.
        [identity, made_with, [_made_of(c, settings.voice) for c in chunks]],
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


_CAST_SETTINGS = frozenset(("quote_gap_ms",))


def _made_of(chunk: Chunk, voice: str) -> tuple[object, ...]:
    """A chunk as its book's fingerprint holds it: the voice only when a cast gave it one
    of its own (so a book made before casts existed stays current)."""
    made: tuple[object, ...] = (chunk.chapter, chunk.text)
    if chunk.written is not None or chunk.voice not in ("", voice):
        made += (chunk.written,)
    if chunk.voice not in ("", voice):
        made += (chunk.voice,)
    return made


# Settings that change how a run goes, not what it makes; changing them keeps a book current.
# The quality gate's are among them: a book already written is judged by `narrator check`
# (and upgrading to the gate leaves every fingerprint, so every book, as it was).
_RUN_ONLY_SETTINGS = frozenset(
    (
        "api_key", "concurrency", "rpm", "cache_dir", "retries", "backoff_base", "backoff_max",
        "adaptive_rate", "request_timeout", "max_segment_bytes", "force", "lang", "max_chars",
        "allow_hosts", "allow_private_network", "stall_timeout", "qa", "qa_retries",
        "qa_budget", "lexicon", "lexicon_override",  # their effect is in the chunks' text
        "max_text_bytes",
        "store_url", "objects_url", "pacing_url",  # where work is kept and paced, not what
        "cast", "cast_override", "dialogue_voice", "speaker_lines",  # and in their voices
    )
)  # fmt: skip
