"""Whether a book is up to date, and the room a run will need, before anything is sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from ..book.encode import format_of
from ..book.joiner import Piece
from ..book.readalong import is_read_along
from ..book.stream import BookStream
from ..book.subtitles import read_subtitles, write_subtitles
from ..chunks.language import resolve_language
from ..errors import AudioError, NarratorError
from ..settings import SUBTITLE_KINDS, Settings
from ..store import Segment, Store
from ..store.thread import StoreThread
from ..synth.quality import Verdict
from ..synth.sanity import max_seconds
from ..util.diskspace import BYTES_PER_CHAR
from .narration import chunk_gap_ms
from .plan import Plan
from .results import DocumentReport, Flag
from .status import Status

__all__ = [
    "room_needed",
    "same_filesystem",
    "sidecars_current",
    "sidecars_made",
    "subtitles_from_cache",
    "up_to_date",
]

log = logging.getLogger("narrator")


def sidecars_current(files: Sequence[Path], kind: str | None) -> bool:
    """Bring an up-to-date book's subtitle sidecars in line with ``kind`` (srt, vtt or
    None) without touching its audio: drop those no longer asked for, write one kind
    from the other. False when a sidecar is asked for and cannot be made without the
    timings of a run (then the book is made again)."""
    for file in files:
        if kind is None:
            for other in SUBTITLE_KINDS:
                file.with_suffix(f".{other}").unlink(missing_ok=True)
            continue
        if file.with_suffix(f".{kind}").exists():
            continue
        others = [file.with_suffix(f".{o}") for o in SUBTITLE_KINDS if o != kind]
        found = next((path for path in others if path.exists()), None)
        if found is None:
            return False
        try:
            cues = read_subtitles(found.read_text(encoding="utf-8"))
        except (OSError, UnicodeError, ValueError):
            return False
        write_subtitles(cues, file.with_suffix(f".{kind}"), kind)
    return True


async def sidecars_made(
    report: DocumentReport, plan: Plan, settings: Settings, db: StoreThread
) -> bool:
    """Whether the up-to-date book of ``report`` has the sidecars ``settings`` ask for,
    once dropped, converted (:func:`sidecars_current`) or cued anew from its segments in
    the cache (:func:`subtitles_from_cache`); False when it must be made again."""
    options = settings.audiobook
    if options.subtitles is not None and is_read_along(plan.output, options.format):
        return True  # a read-along book has its text on its pages: no sidecar beside it
    # A read-along book made beside the audiobook has no sidecar of its own either.
    files = [Path(f) for f in report.files or (report.output,) if not is_read_along(Path(f))]
    if await asyncio.to_thread(sidecars_current, files, options.subtitles):
        return True
    segments = await db.run(_segments, db.store, plan.keys)
    if any(segment is None for segment in segments):
        return False  # one is gone from the cache: the run makes it, and the book, again
    found = [s for s in segments if s is not None]
    made = await asyncio.to_thread(subtitles_from_cache, plan, found, settings)
    if made is None or [f.name for f in made] != [f.name for f in files]:
        return False
    log.info("%s: up to date, its subtitles written from the cache", plan.output)
    return True


def _segments(store: Store, keys: Sequence[str]) -> list[Segment | None]:
    return [store.lookup(key) for key in keys]


def subtitles_from_cache(
    plan: Plan, segments: Sequence[Segment], settings: Settings
) -> list[Path] | None:
    """Write the subtitles of ``plan``'s book (made before without them) from its
    ``segments``, cued as the run that made the book would have cued them: the same
    pieces through the same stream, its audio read for the pauses, never encoded. The
    book's files (its parts when split) it wrote them for; None when a segment cannot
    be read."""
    options = settings.audiobook
    lang = resolve_language(plan.document, settings.lang)
    stream = BookStream(plan.document, plan.chunks, plan.output, options, lang=lang, audio=False)
    try:
        for n, (chunk, segment) in enumerate(zip(plan.chunks, segments, strict=True)):
            gap = chunk_gap_ms(settings, plan.chunks[n - 1] if n else None, chunk)
            stream.add(Piece(segment.path, gap, max_seconds(chunk.billing_chars)))
        return list(stream.finish().files)
    except (AudioError, OSError) as exc:
        log.warning("%s: subtitles not written from the cache (%s)", plan.output, exc)
        return None


def up_to_date(plans: Sequence[Plan], store: Store) -> list[DocumentReport]:
    """Reports for the documents whose audiobook is already made from the same chunks
    (with the segments the quality gate flagged in it; their start times are not kept)."""
    current = []
    for plan in plans:
        if not plan.chunks:
            continue
        book = store.current_book(plan.output, plan.fingerprint)
        if book is None:
            continue
        log.info("%s: up to date, skipped (--force makes it again)", plan.output)
        flagged = store.flagged(plan.keys)
        flags = [
            Flag.of(chunk, Verdict(**stored.verdict), attempts=stored.attempts, start=None)
            for chunk, key in zip(plan.chunks, plan.keys, strict=True)
            if (stored := flagged.get(key)) is not None
        ]
        current.append(
            DocumentReport(
                input=plan.document.source,
                output=str(plan.output),
                title=plan.document.title,
                status=Status.UP_TO_DATE,
                chunks=len(plan.chunks),
                billing_characters=plan.billing_chars,
                audio_seconds=book.seconds,
                requests=0,
                retries=0,
                cached_chunks=0,
                # parts sit beside the output: named as the output was given
                files=tuple(str(plan.output.with_name(f.name)) for f in book.files),
                flagged=tuple(flags),
                respelled_chunks=sum(c.written is not None for c in plan.chunks),
                warnings=plan.warnings,
            )
        )
    return current


def room_needed(plans: Sequence[Plan], store: Store, settings: Settings) -> dict[Path, int]:
    """Bytes each folder will need, estimated from the text: the cache for the audio not
    yet in it, each output folder for its books: the book as it is encoded, and for
    M4B/M4A its remux with chapters beside it at the end (no WAV of a compressed book
    is ever on disk)."""
    needs: dict[Path, int] = {}
    missing: dict[str, int] = {}
    for plan in plans:
        for chunk, key in zip(plan.chunks, plan.keys, strict=True):
            if key not in missing and store.lookup(key) is None:
                missing[key] = chunk.billing_chars
    cache = settings.store_dir.absolute()
    needs[cache] = sum(missing.values()) * BYTES_PER_CHAR
    options = settings.audiobook
    for plan in plans:
        work = plan.work
        wav = plan.billing_chars * BYTES_PER_CHAR
        try:
            fmt = format_of(work.output, options.format)
        except NarratorError:
            # A read-along book holds its audio as AAC, and the EPUB is a second copy.
            fmt = "m4a" if is_read_along(work.output, options.format) else "wav"
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
