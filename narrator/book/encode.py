"""What listeners use: MP3, M4B/M4A, FLAC, Ogg Vorbis, Opus, WAV, with tags and chapters.

A book is encoded while it is synthesized (:mod:`narrator.book.stream`, ffmpeg fed
through a pipe); :func:`finish_part` then only tags what was encoded
(and for M4B/M4A moves its ``moov`` first, :mod:`narrator.book.mp4`).
:func:`encode` encodes a WAV file already on disk in one go (the benchmarks' reference).
ffmpeg is the ``ffmpeg`` on ``PATH`` when there is one, else the binary the
``imageio-ffmpeg`` wheel ships (so a machine without ffmpeg still works).

Tags and chapters go where each format's players look for them:

- M4B/M4A: iTunes tags and QuickTime chapter marks, written by ffmpeg from an
  ffmetadata file;
- MP3: ID3v2.3 tags with ``CHAP``/``CTOC`` chapter frames, written by mutagen;
- FLAC, Ogg Vorbis, Opus: Vorbis comments with ``CHAPTERnnn``/``CHAPTERnnnNAME``
  chapters, written by mutagen;
- WAV: a ``LIST/INFO`` chunk (title, artist, album, date), written by narrator after
  the samples (:mod:`narrator.book.wavfile`); WAV has no chapter marks players read.
  Samples are copied, not re-encoded; past 4 GiB the file is RF64.

Loudness normalisation is EBU R128 in two passes over the whole book (ffmpeg
``loudnorm``: measure, then apply with the measurement), never per segment, which
would make the volume jump between chunks.

Every output appears atomically: written to a temporary name beside it, then renamed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..util.atomic import atomic_path, replace_synced, temp_beside
from ..util.image import image_mime
from ..util.sanitize import strip_controls
from .ffmpeg import (
    Loudness,
    ffmpeg_exe,
    longest_seconds,
    measure_loudness,
    normalize_wav,
    run_ffmpeg,
    wav_seconds,
)
from .mp4 import finish_mp4
from .tags import ChapterMark, Metadata, chapter_spans, cover_mp4, tag_mp3, tag_vorbis

__all__ = [
    "FORMATS",
    "ChapterMark",
    "Loudness",
    "Metadata",
    "encode",
    "ffmpeg_exe",
    "finish_part",
    "format_of",
    "image_mime",
    "measure_loudness",
    "normalize_wav",
]


@dataclass(frozen=True, slots=True)
class _Format:
    muxer: str
    codec: tuple[str, ...]
    mime: str


_AAC = ("-c:a", "aac", "-aac_coder", "fast", "-b:a", "64k")

FORMATS: dict[str, _Format] = {
    # 64 kb/s mono is the usual rate for spoken-word MP3 and AAC audiobooks.
    "mp3": _Format(
        "mp3", ("-c:a", "libmp3lame", "-b:a", "64k", "-id3v2_version", "0"), "audio/mpeg"
    ),
    # The fast AAC coder: 3-4x the default (twoloop) on speech, so a streaming encoder
    # outruns 180 requests a minute; at 64 kb/s mono its error is no larger in any band
    # (docs/performance.md says how that was judged).
    "m4b": _Format("ipod", (*_AAC, "-movflags", "+faststart"), "audio/x-m4b"),
    "m4a": _Format("ipod", (*_AAC, "-movflags", "+faststart"), "audio/x-m4a"),
    "flac": _Format("flac", ("-c:a", "flac"), "audio/flac"),
    "ogg": _Format("ogg", ("-c:a", "libvorbis", "-q:a", "4"), "audio/ogg"),
    "opus": _Format("opus", ("-c:a", "libopus", "-b:a", "32k"), "audio/ogg"),
    "wav": _Format("wav", ("-c:a", "copy", "-rf64", "auto"), "audio/wav"),
}
"""Every output format: its name is also its file extension."""

_VORBIS = ("flac", "ogg", "opus")


def format_of(path: Path, explicit: str | None = None) -> str:
    """The output format: ``explicit`` if given, else ``path``'s extension."""
    name = (explicit or path.suffix.lstrip(".")).lower()
    if name not in FORMATS:
        given = f"Settings.audiobook.format {explicit}" if explicit else f"{path.name}"
        raise ConfigError(
            f"{given}: unknown audio format; choose one of {', '.join(FORMATS)} "
            "(by the output's extension or Settings.audiobook.format)"
        )
    return name


def _escape(value: str) -> str:
    """A value for an ffmetadata file: control characters gone (a chapter title comes
    from the document), its special characters backslash-escaped."""
    return re.sub(r"([=;#\\\n])", r"\\\1", " ".join(strip_controls(value).split()))


def _ffmetadata(meta: Metadata, chapters: Sequence[ChapterMark], end: float) -> str:
    lines = [";FFMETADATA1"]
    for key, value in _tag_values(meta).items():
        lines.append(f"{key}={_escape(value)}")
    for mark, stop in chapter_spans(chapters, end):
        lines += [
            "[CHAPTER]",
            "TIMEBASE=1/1000",
            f"START={round(mark.start * 1000)}",
            f"END={max(round(stop * 1000), round(mark.start * 1000))}",
            f"title={_escape(mark.title)}",
        ]
    return "\n".join(lines) + "\n"


def _tag_values(meta: Metadata) -> dict[str, str]:
    """ffmpeg's generic tag names, which each muxer maps to its own."""
    tags = {"title": meta.title, "genre": "Audiobook"}
    if meta.author:
        tags["artist"] = meta.author
        tags["album_artist"] = meta.author
    if meta.album:
        tags["album"] = meta.album
    if meta.year:
        tags["date"] = meta.year
    if meta.track:
        tags["track"] = f"{meta.track[0]}/{meta.track[1]}"
    return tags


def encode(
    source: Path,
    output: Path,
    *,
    fmt: str,
    metadata: Metadata,
    chapters: Sequence[ChapterMark] = (),
    start: float = 0.0,
    end: float | None = None,
) -> Path:
    """Encode ``source`` (a WAV file), from ``start`` to ``end`` seconds, into ``output``.

    ``chapters`` are relative to ``start``. ``output`` is replaced only once it is
    complete. Raises :class:`AudioError` when ffmpeg fails.
    """
    spec = FORMATS[fmt]
    output.parent.mkdir(parents=True, exist_ok=True)
    meta_file = temp_beside(output).with_suffix(".ffmeta")
    args = ["-y"]
    if start > 0:
        args += ["-ss", f"{start:.6f}"]
    if end is not None:
        args += ["-t", f"{end - start:.6f}"]
    args += ["-i", str(source)]
    try:
        with atomic_path(output) as tmp:
            if fmt in ("m4b", "m4a"):
                length = (end if end is not None else wav_seconds(source)) - start
                meta_file.write_text(_ffmetadata(metadata, chapters, length), encoding="utf-8")
                args += ["-i", str(meta_file), "-map", "0:a", "-map_metadata", "1"]
                args += ["-map_chapters", "1" if chapters else "-1"]
            else:
                args += ["-map", "0:a", "-map_metadata", "-1", "-map_chapters", "-1"]
                if fmt == "wav":
                    for key, value in _tag_values(metadata).items():
                        args += ["-metadata", f"{key}={value}"]
            args += [*spec.codec, "-f", spec.muxer, str(tmp)]
            seconds = (end if end is not None else longest_seconds(source)) - start
            run_ffmpeg(args, f"write {output.name}", audio_seconds=seconds)
            if fmt == "mp3":
                tag_mp3(tmp, metadata, chapters)
            elif fmt in _VORBIS:
                tag_vorbis(tmp, fmt, metadata, chapters)
            elif fmt in ("m4b", "m4a") and metadata.cover:
                cover_mp4(tmp, metadata.cover)
    finally:
        meta_file.unlink(missing_ok=True)
    return output


def finish_part(
    encoded: Path,
    output: Path,
    *,
    fmt: str,
    metadata: Metadata,
    chapters: Sequence[ChapterMark] = (),
    seconds: float,
) -> Path:
    """Make ``encoded`` (audio a streaming encoder wrote, without tags) into ``output``:
    for M4B/M4A a new ``moov`` with chapters and tags, first, and the audio copied as
    bytes (:mod:`narrator.book.mp4`, no remux); tags by mutagen in place for the others
    (a WAV file brings its own). Nothing is encoded again. ``encoded`` is gone
    afterwards, moved or removed; ``output`` appears whole or not at all."""
    if fmt in ("m4b", "m4a"):
        try:
            with atomic_path(output) as tmp:
                finish_mp4(
                    encoded, tmp, metadata=metadata, tags=_tag_values(metadata),
                    chapters=chapters, seconds=seconds,
                )  # fmt: skip
        finally:
            encoded.unlink(missing_ok=True)
        return output
    if fmt == "mp3":
        tag_mp3(encoded, metadata, chapters)
    elif fmt in _VORBIS:
        tag_vorbis(encoded, fmt, metadata, chapters)
    replace_synced(encoded, output)
    return output


def tag_values(meta: Metadata) -> dict[str, str]:
    """ffmpeg's generic tag names and their values, for a WAV file's LIST/INFO chunk."""
    return _tag_values(meta)
