"""Tags and chapters where each format's players look for them, written by mutagen:
ID3v2.3 with ``CHAP``/``CTOC`` frames for MP3, Vorbis comments with
``CHAPTERnnn``/``CHAPTERnnnNAME`` for FLAC, Ogg Vorbis and Opus, a cover for M4B/M4A."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AudioError
from ..util.image import image_mime
from ..util.sanitize import tag_text

__all__ = ["ChapterMark", "Metadata"]


@dataclass(frozen=True, slots=True)
class Metadata:
    """Tags written into the audiobook. ``cover`` is a JPEG or PNG file."""

    title: str
    author: str | None = None
    album: str | None = None
    year: str | None = None
    cover: Path | None = None
    track: tuple[int, int] | None = None  # (number, total) when a book is split into parts

    def __post_init__(self) -> None:
        # A title comes from a document or its file name: no control character, escape
        # sequence or XML-illegal character reaches any format's tags (one place for all).
        for name in ("title", "author", "album", "year"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tag_text(value))


@dataclass(frozen=True, slots=True)
class ChapterMark:
    """A chapter's title and where it starts, in seconds from the start of the file."""

    title: str
    start: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "title", tag_text(self.title))


def chapter_spans(chapters: Sequence[ChapterMark], end: float) -> list[tuple[ChapterMark, float]]:
    """Each chapter with where it stops: the next one's start, the last one at ``end``.

    Empty for no chapters (a document without headings has none).
    """
    stops = [mark.start for mark in chapters[1:]] + [end]
    return list(zip(chapters, stops[: len(chapters)], strict=True))


def _chapter_order_id3() -> type:
    """An ID3 tag that writes its chapter frames last, in the order given.

    mutagen sorts the frames it writes by size, so chapter frames came out in an order
    of their titles' lengths (ch1, ch2, ch0); players that list CHAP frames as they find
    them, rather than through the CTOC, then showed the chapters shuffled.
    """
    from mutagen.id3 import ID3
    from mutagen.id3._tags import save_frame  # mutagen's own frame writer

    class ChapterOrderID3(ID3):
        def __init__(self) -> None:
            super().__init__()
            self.ordered: list[Any] = []

        def _write(self, config: Any) -> bytearray:
            data: bytearray = super()._write(config)
            for frame in self.ordered:
                data += save_frame(frame, config=config)
            return data

    return ChapterOrderID3


def tag_mp3(path: Path, meta: Metadata, chapters: Sequence[ChapterMark]) -> None:
    from mutagen.id3 import (
        APIC,
        CHAP,
        CTOC,
        TALB,
        TCON,
        TDRC,
        TIT2,
        TPE1,
        TPE2,
        TRCK,
        CTOCFlags,
    )

    tags = _chapter_order_id3()()
    tags.add(TIT2(encoding=3, text=[meta.title]))
    tags.add(TCON(encoding=3, text=["Audiobook"]))
    if meta.author:
        tags.add(TPE1(encoding=3, text=[meta.author]))
        tags.add(TPE2(encoding=3, text=[meta.author]))
    if meta.album:
        tags.add(TALB(encoding=3, text=[meta.album]))
    if meta.year:
        tags.add(TDRC(encoding=3, text=[meta.year]))
    if meta.track:
        tags.add(TRCK(encoding=3, text=[f"{meta.track[0]}/{meta.track[1]}"]))
    if meta.cover:
        tags.add(APIC(encoding=3, mime=image_mime(meta.cover), type=3, desc="Cover",
                      data=meta.cover.read_bytes()))  # fmt: skip
    if chapters:
        from mutagen.mp3 import MP3

        info = MP3(path).info
        total_ms = round(info.length * 1000) if info else round(chapters[-1].start * 1000)
        ids = [f"ch{i}" for i in range(len(chapters))]
        tags.ordered.append(
            CTOC(
                element_id="toc",
                flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
                child_element_ids=ids,
                sub_frames=[TIT2(encoding=3, text=["Chapters"])],
            )
        )
        for cid, (mark, stop_s) in zip(ids, chapter_spans(chapters, total_ms / 1000), strict=True):
            begin = round(mark.start * 1000)
            stop = round(stop_s * 1000)
            tags.ordered.append(
                CHAP(
                    element_id=cid,
                    start_time=begin,
                    end_time=max(begin, stop),
                    # 0xFFFFFFFF: no byte offsets, players seek by time
                    start_offset=0xFFFFFFFF,
                    end_offset=0xFFFFFFFF,
                    sub_frames=[TIT2(encoding=3, text=[mark.title])],
                )
            )
    # ID3v2.3: what Apple's and most other players read reliably.
    tags.save(path, v2_version=3)


def _clock(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def tag_vorbis(path: Path, fmt: str, meta: Metadata, chapters: Sequence[ChapterMark]) -> None:
    import mutagen
    from mutagen.flac import Picture

    audio = mutagen.File(path)
    if audio is None:
        raise AudioError(f"mutagen cannot read {path.name} back to tag it")
    if audio.tags is None:
        audio.add_tags()
    tags = {
        "TITLE": meta.title,
        "GENRE": "Audiobook",
        "ARTIST": meta.author,
        "ALBUMARTIST": meta.author,
        "ALBUM": meta.album,
        "DATE": meta.year,
        "TRACKNUMBER": str(meta.track[0]) if meta.track else None,
        "TRACKTOTAL": str(meta.track[1]) if meta.track else None,
    }
    for key, value in tags.items():
        if value:
            audio[key] = value
    # The Vorbis comment chapter convention, read by ffmpeg, foobar2000 and others.
    for i, mark in enumerate(chapters, start=1):
        audio[f"CHAPTER{i:03d}"] = _clock(mark.start)
        audio[f"CHAPTER{i:03d}NAME"] = mark.title
    if meta.cover:
        picture = Picture()
        picture.type = 3  # front cover
        picture.mime = image_mime(meta.cover)
        picture.desc = "Cover"
        picture.data = meta.cover.read_bytes()
        if fmt == "flac":
            audio.add_picture(picture)
        else:
            audio["METADATA_BLOCK_PICTURE"] = base64.b64encode(picture.write()).decode("ascii")
    audio.save()


def cover_mp4(path: Path, cover: Path) -> None:
    from mutagen.mp4 import MP4, MP4Cover

    kind = MP4Cover.FORMAT_PNG if image_mime(cover) == "image/png" else MP4Cover.FORMAT_JPEG
    audio = MP4(path)
    if audio.tags is None:
        audio.add_tags()
    assert audio.tags is not None
    audio.tags["covr"] = [MP4Cover(cover.read_bytes(), imageformat=kind)]
    audio.save()
