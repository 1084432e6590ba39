"""Whether a book is up to date, and the room a run will need, before anything is sent."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ..book.encode import format_of
from ..errors import NarratorError
from ..settings import Settings
from ..store import Store
from ..synth.quality import Verdict
from ..util.diskspace import BYTES_PER_CHAR
from .plan import Plan
from .results import DocumentReport, Flag
from .status import Status

__all__ = ["room_needed", "same_filesystem", "up_to_date"]

log = logging.getLogger("narrator")


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
