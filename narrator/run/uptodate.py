"""Whether a book is up to date, and the room a run will need, before anything is sent."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from ..book.encode import format_of
from ..chunks.split import Chunk
from ..errors import NarratorError
from ..settings import Settings
from ..store import Store, segment_key
from ..synth.providers import Provider
from ..util.diskspace import BYTES_PER_CHAR
from .results import DocumentReport, Flag, Work
from .status import Status

__all__ = ["book_fingerprint", "room_needed", "same_filesystem", "up_to_date"]

log = logging.getLogger("narrator")


def book_fingerprint(provider: Provider, settings: Settings, chunks: Sequence[Chunk]) -> str:
    """What an audiobook is made from: its chunks' texts and chapters, the provider, and
    every setting but those that only change how fast it is made."""
    made_with = {
        name: str(value)
        for name, value in dataclasses.asdict(settings).items()
        if name not in _RUN_ONLY_SETTINGS
    }
    blob = json.dumps(
        # The written text too where a lexicon respelled it: the subtitles show it.
        [
            provider.identity,
            made_with,
            [
                (c.chapter, c.text) if c.written is None else (c.chapter, c.text, c.written)
                for c in chunks
            ],
        ],
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


# Settings that change how a run goes, not what it makes; changing them keeps a book current.
# The quality gate's are among them: a book already written is judged by `narrator check`
# (and upgrading to the gate leaves every fingerprint, so every book, as it was).
_RUN_ONLY_SETTINGS = frozenset(
    (
        "api_key", "concurrency", "rpm", "cache_dir", "retries", "backoff_base", "backoff_max",
        "adaptive_rate", "request_timeout", "max_segment_bytes", "force", "lang", "max_chars",
        "allow_hosts", "allow_private_network", "stall_timeout", "qa", "qa_retries",
        "qa_budget", "lexicon", "lexicon_override",  # their effect is in the chunks' text
    )
)  # fmt: skip


def up_to_date(
    plans: Sequence[tuple[Work, list[Chunk]]],
    store: Store,
    fingerprints: dict[Path, str],
    key_of: Callable[[Chunk], str],
) -> list[DocumentReport]:
    """Reports for the documents whose audiobook is already made from the same chunks
    (with the segments the quality gate flagged in it; their start times are not kept)."""
    current = []
    for work, chunks in plans:
        if not chunks:
            continue
        book = store.current_book(work.output, fingerprints[work.output])
        if book is None:
            continue
        log.info("%s: up to date, skipped (--force makes it again)", work.output)
        flagged = store.flagged([key_of(chunk) for chunk in chunks])
        flags = [
            Flag(
                chunk=chunk.index + 1,
                text=chunk.text,
                kind=stored.verdict["kind"],
                reason=stored.verdict["reason"],
                measured=round(stored.verdict["measured"], 2),
                expected=round(stored.verdict["expected"], 2),
                attempts=stored.attempts,
            )
            for chunk in chunks
            if (stored := flagged.get(key_of(chunk))) is not None
        ]
        current.append(
            DocumentReport(
                input=work.document.source,
                output=str(work.output),
                title=work.document.title,
                status=Status.UP_TO_DATE,
                chunks=len(chunks),
                billing_characters=sum(c.billing_chars for c in chunks),
                audio_seconds=book.seconds,
                requests=0,
                retries=0,
                cached_chunks=0,
                # parts sit beside the output: named as the output was given
                files=tuple(str(work.output.with_name(f.name)) for f in book.files),
                flagged=tuple(flags),
                respelled_chunks=sum(c.written is not None for c in chunks),
            )
        )
    return current


def room_needed(
    plans: Sequence[tuple[Work, list[Chunk]]], store: Store, provider: Provider, settings: Settings
) -> dict[Path, int]:
    """Bytes each folder will need, estimated from the text: the cache for the audio not
    yet in it, each output folder for its books: the book as it is encoded, and for
    M4B/M4A its remux with chapters beside it at the end (no WAV of a compressed book
    is ever on disk)."""
    needs: dict[Path, int] = {}
    missing: dict[str, int] = {}
    for _, chunks in plans:
        for chunk in chunks:
            key = segment_key(provider=provider.identity, voice=settings.voice, text=chunk.text)
            if key not in missing and store.lookup(key) is None:
                missing[key] = chunk.billing_chars
    cache = settings.store_dir.absolute()
    needs[cache] = sum(missing.values()) * BYTES_PER_CHAR
    options = settings.audiobook
    for work, chunks in plans:
        wav = sum(c.billing_chars for c in chunks) * BYTES_PER_CHAR
        try:
            fmt = format_of(work.output, options.format)
        except NarratorError:
            fmt = "wav"
        encoded = wav if fmt in ("wav", "flac") else wav // 4
        folder = work.output.absolute().parent
        copies = 2 if fmt in ("m4b", "m4a") else 1  # the remux at the end
        needs[folder] = needs.get(folder, 0) + encoded * copies
    return needs


def same_filesystem(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return a == b
