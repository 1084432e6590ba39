"""Issue 26's question: how close to the voice is each sentence's highlight?

A book (English prose, then Chinese) is cut into chunks as a run would cut it; each
chunk's audio is made with known sentence starts (:mod:`narrator.tools.emulator.timed`:
each sentence read on its own, joined by pauses as real voices are assumed to make
them); the read-along book is written from those segments by the real writer, and its
SMIL read back. A sentence's error is its ``clipBegin`` less its true start in the
chapter's audio. The first sentence of a chunk starts where the chunk does (exact up to
the 40 ms the joins keep before speech); the row is about the others, the ones placed
at pauses.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import statistics
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ...book.joiner import Joiner, Piece
from ...book.readalong import ReadAlongStream
from ...book.readtext import book_text
from ...chunks.split import split_document
from ...inputs.documents import parse_text
from ..emulator.audio import SAMPLE_RATE
from ..emulator.timed import PARAGRAPH_PAUSE, SENTENCE_PAUSE, timed_speech
from . import texts
from .harness import Progress, Row, Sizes, Workdir

__all__ = ["TimingErrors", "readalong", "timing_errors"]

MEDIAN_GOAL = 0.150
P95_GOAL = 0.400
_CLIP = re.compile(r'<text src="[^"#]+#s(\d+)"/><audio src="[^"]+" clipBegin="([\d.]+)s"')


@dataclass(frozen=True, slots=True)
class TimingErrors:
    """Signed errors in seconds: sentences placed inside a chunk, and chunks' first."""

    inside: tuple[float, ...]
    first: tuple[float, ...]

    def summary(self) -> dict[str, float]:
        absolute = sorted(abs(e) for e in self.inside)
        firsts = statistics.median(abs(e) for e in self.first)
        return {
            "sentences": len(self.inside),
            "median_ms": round(statistics.median(absolute) * 1000, 1),
            "p95_ms": round(_quantile(absolute, 0.95) * 1000, 1),
            "max_ms": round(absolute[-1] * 1000, 1),
            "chunk_firsts_median_ms": round(firsts * 1000, 1),
        }


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def timing_errors(
    text: str,
    lang: str,
    folder: Path,
    *,
    seed: int = 1,
    pauses: tuple[float, float] = SENTENCE_PAUSE,
) -> TimingErrors:
    """Write ``text`` (Markdown) as a read-along book from segments with known sentence
    starts, in ``folder``; how far each sentence's clip starts from the truth."""
    rng = random.Random(seed)
    doc = parse_text(text)
    chunks = split_document(doc, max_chars=600, lang=lang)
    chapters = book_text(doc, chunks, lang)
    by_chunk: dict[int, list[tuple[int, int, str, bool]]] = {}  # chapter, number, text, opens
    for chapter in chapters:
        for block in chapter.blocks:
            for n, sentence in enumerate(block.sentences):
                entry = (chapter.number, sentence.number, sentence.text, n == 0)
                by_chunk.setdefault(sentence.chunk, []).append(entry)
    truth: dict[tuple[int, int], tuple[float, bool]] = {}  # from the chunk's kept audio
    pieces = []
    for chunk in chunks:
        entries = by_chunk[chunk.index]
        spoken = timed_speech(
            [e[2] for e in entries],
            paragraph_starts=[e[3] for e in entries],
            rng=rng,
            pauses=pauses,
        )
        path = folder / f"segment-{chunk.index}.wav"
        path.write_bytes(spoken.wav)
        piece = Piece(path, 300)
        ready = Joiner(clean=True).ready(piece)  # where the book's copy of it starts
        ready.close()
        kept = ready.span[0] / SAMPLE_RATE
        for k, (chapter_number, number, _, _) in enumerate(entries):
            truth[chapter_number, number] = (spoken.starts[k] - kept, k == 0)
        pieces.append(piece)
    book = folder / "book.epub"
    stream = ReadAlongStream(doc, chunks, book, lang=lang)
    for piece in pieces:
        stream.add(piece)
    stream.finish()
    inside: list[float] = []
    first: list[float] = []
    with zipfile.ZipFile(book) as epub:
        for chapter in chapters:
            smil = epub.read(f"OEBPS/chapter-{chapter.number:03d}.smil").decode()
            clips = {int(n): float(begin) for n, begin in _CLIP.findall(smil)}
            starts: dict[int, float] = {}  # each chunk's start in the chapter's audio
            for sentence in chapter.sentences:
                offset, opens = truth[chapter.number, sentence.number]
                if opens:
                    starts[sentence.chunk] = clips[sentence.number]
                error = clips[sentence.number] - (starts[sentence.chunk] + offset)
                (first if opens else inside).append(error)
    return TimingErrors(tuple(inside), tuple(first))


def _book(lang: str, size: int) -> str:
    if lang == "zh":
        return texts.chinese(size, seed=5)
    return texts.english(size, seed=5)


# Shorter pauses than real voices are assumed to make: where the method's limit lies.
SHORT_PAUSE = (0.08, 0.25)


async def readalong(sizes: Sizes, work: Workdir, progress: Progress) -> list[Row]:
    """Sentence timing of the read-along book against true sentence starts: with the
    pauses real voices are assumed to make (the goal), and with shorter ones (the limit)."""
    size = sizes.chunk_size_chars
    rows = []
    for pauses, name in ((SENTENCE_PAUSE, "assumed"), (SHORT_PAUSE, "short")):
        results: dict[str, dict[str, float]] = {}
        inside: list[float] = []
        for lang in ("en", "zh"):
            progress(f"read-along: sentence timing, {lang}, {name} pauses")
            folder = work.path(f"readalong-{lang}-{name}")
            folder.mkdir()
            text = _book(lang, size if lang == "en" else size * 3 // 2)
            try:
                errors = await asyncio.to_thread(timing_errors, text, lang, folder, pauses=pauses)
            finally:
                shutil.rmtree(folder, ignore_errors=True)  # segments and the book: measured
            results[lang] = errors.summary()
            inside += errors.inside
        rows.append(_row(inside, results, pauses, goal=pauses == SENTENCE_PAUSE))
    return rows


def _row(
    inside: list[float],
    results: dict[str, dict[str, float]],
    pauses: tuple[float, float],
    *,
    goal: bool,
) -> Row:
    absolute = sorted(abs(e) for e in inside)
    median, p95 = statistics.median(absolute), _quantile(absolute, 0.95)
    figure = (
        f"median {median * 1000:,.0f} ms, p95 {p95 * 1000:,.0f} ms over {len(absolute)} "
        f"sentences inside chunks (en {results['en']['median_ms']:,.0f}/"
        f"{results['en']['p95_ms']:,.0f}, zh {results['zh']['median_ms']:,.0f}/"
        f"{results['zh']['p95_ms']:,.0f} ms)"
    )
    reference = (
        f"eSpeak NG sentences joined by {pauses[0]:g}-{pauses[1]:g} s pauses "
        f"({PARAGRAPH_PAUSE[0]:g}-{PARAGRAPH_PAUSE[1]:g} s between paragraphs)"
    )
    data = {"median_s": median, "p95_s": p95, "pauses_s": pauses, "by_language": results}
    what = "read-along sentence timing" + ("" if goal else ", shorter pauses than assumed")
    if not goal:  # no goal: it shows where the method stops working
        return Row(what, figure, reference, p95 / P95_GOAL, f"{p95 / P95_GOAL:.2f}", data=data)
    met = median <= MEDIAN_GOAL and p95 <= P95_GOAL
    return Row(
        what,
        figure,
        reference,
        p95 / P95_GOAL,
        f"{p95 / P95_GOAL:.2f}",
        f"median <= {MEDIAN_GOAL * 1000:.0f} ms, p95 <= {P95_GOAL * 1000:.0f} ms",
        met,
        data,
    )
