"""A document's text as a read-along book shows it: chapters of headings and paragraphs,
each cut into sentences, each sentence inside one chunk (so its audio is in one segment).

The chunks are the source, not the document: they hold the text as written (a lexicon's
respellings undone) and say which paragraph goes on in the next chunk. A chunk's text
is its paragraphs (or slices of them) joined by a blank line; a slice that is not a
paragraph's start carries on the paragraph before. Sentences come from the same
splitter that cut the chunks (:mod:`narrator.chunks.sentences`); a sentence the splitter
had to cut across two chunks (one longer than a request) is two pieces here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from ..chunks.sentences import segmenter_for, sentence_bounds
from ..chunks.split import Chunk, billing_chars
from ..inputs.documents import Document

__all__ = ["Block", "ChapterText", "Sentence", "book_text"]


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence (or the piece of one a chunk holds), numbered within its chapter."""

    number: int  # 1-based within the chapter: its element id is f"s{number}"
    chunk: int  # Chunk.index whose audio holds it
    text: str  # as written; ends with "\n" where a line ends
    weight: int  # billing characters: its share of the chunk's time

    @property
    def id(self) -> str:
        return f"s{self.number}"


@dataclass(frozen=True, slots=True)
class Block:
    """A heading or a paragraph."""

    heading: bool
    sentences: tuple[Sentence, ...]


@dataclass(frozen=True, slots=True)
class ChapterText:
    """One chapter (the whole book when the document has no headings)."""

    number: int  # 1-based
    title: str | None  # the heading, if the chapter has one
    blocks: tuple[Block, ...]

    @property
    def sentences(self) -> list[Sentence]:
        return [s for block in self.blocks for s in block.sentences]


_SEP = "\n\n"


def book_text(document: Document, chunks: Sequence[Chunk], lang: str) -> list[ChapterText]:
    """The chapters of ``chunks`` (the document's, in order), one per chapter they cover.

    A document without headings is one chapter without a title; no chunks, no chapters.
    """
    segmenter = segmenter_for(lang)
    titled = {chapter.index: chapter.title for chapter in document.chapters}
    chapters: list[ChapterText] = []
    groups: list[list[Chunk]] = []
    for chunk in chunks:
        if not groups or groups[-1][0].chapter != chunk.chapter:
            groups.append([])
        groups[-1].append(chunk)
    for group in groups:
        title = titled.get(group[0].chapter)
        # Each paragraph as (chunk, its slice of the text) pieces.
        paragraphs: list[list[tuple[int, str]]] = []
        for chunk in group:
            for n, piece in enumerate(chunk.shown.split(_SEP)):
                if not piece.strip():
                    continue
                if n or chunk.paragraph_start or not paragraphs:
                    paragraphs.append([])
                paragraphs[-1].append((chunk.index, piece))
        count = 0
        blocks: list[Block] = []
        for at, pieces in enumerate(paragraphs):
            sentences: list[Sentence] = []
            for chunk_index, piece in pieces:
                bounds = sentence_bounds(piece, segmenter)
                for a, b in pairwise(bounds):
                    text = piece[a:b]
                    if not text.strip():
                        continue
                    count += 1
                    sentences.append(Sentence(count, chunk_index, text, billing_chars(text)))
            if sentences:
                heading = title is not None and at == 0
                blocks.append(Block(heading=heading, sentences=tuple(sentences)))
        chapters.append(ChapterText(len(chapters) + 1, title, tuple(blocks)))
    return chapters
