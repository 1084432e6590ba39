"""Encode a stitched WAV into what listeners use: MP3, M4B/M4A, FLAC, Ogg Vorbis, Opus, WAV.

ffmpeg does the work, reading the WAV file as a stream, so Python never holds the book.
It is the ``ffmpeg`` on ``PATH`` when there is one, else the binary the
``imageio-ffmpeg`` wheel ships (so a machine without ffmpeg still works).

Tags and chapters go where each format's players look for them:

- M4B/M4A: iTunes tags and QuickTime chapter marks, written by ffmpeg from an
  ffmetadata file;
- MP3: ID3v2.3 tags with ``CHAP``/``CTOC`` chapter frames, written by mutagen;
- FLAC, Ogg Vorbis, Opus: Vorbis comments with ``CHAPTERnnn``/``CHAPTERnnnNAME``
  chapters, written by mutagen;
- WAV: a ``LIST/INFO`` chunk (title, artist, album, date); WAV has no chapter marks
  players read. Samples are copied, not re-encoded; past 4 GiB the file is RF64.

Loudness normalisation is EBU R128 in two passes over the whole book (ffmpeg
``loudnorm``: measure, then apply with the measurement), never per segment, which
would make the volume jump between chunks.

Every output appears atomically: written to a temporary name beside it, then renamed.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AudioError, ConfigError
from ..util.image import image_mime
from ..util.sanitize import strip_controls
from ..util.wav import read_wav_info

__all__ = [
    "FORMATS",
    "ChapterMark",
    "Loudness",
    "Metadata",
    "encode",
    "ffmpeg_exe",
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


FORMATS: dict[str, _Format] = {
    # 64 kb/s mono is the usual rate for spoken-word MP3 and AAC audiobooks.
    "mp3": _Format(
        "mp3", ("-c:a", "libmp3lame", "-b:a", "64k", "-id3v2_version", "0"), "audio/mpeg"
    ),
    "m4b": _Format(
        "ipod", ("-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart"), "audio/x-m4b"
    ),
    "m4a": _Format(
        "ipod", ("-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart"), "audio/x-m4a"
    ),
    "flac": _Format("flac", ("-c:a", "flac"), "audio/flac"),
    "ogg": _Format("ogg", ("-c:a", "libvorbis", "-q:a", "4"), "audio/ogg"),
    "opus": _Format("opus", ("-c:a", "libopus", "-b:a", "32k"), "audio/ogg"),
    "wav": _Format("wav", ("-c:a", "copy", "-rf64", "auto"), "audio/wav"),
}
"""Every output format: its name is also its file extension."""

_VORBIS = ("flac", "ogg", "opus")
_PCM_CODECS = {1: "pcm_u8", 2: "pcm_s16le", 3: "pcm_s24le", 4: "pcm_s32le"}


@dataclass(frozen=True, slots=True)
class Metadata:
    """Tags written into the audiobook. ``cover`` is a JPEG or PNG file."""

    title: str
    author: str | None = None
    album: str | None = None
    year: str | None = None
    cover: Path | None = None
    track: tuple[int, int] | None = None  # (number, total) when a book is split into parts


@dataclass(frozen=True, slots=True)
class ChapterMark:
    """A chapter's title and where it starts, in seconds from the start of the file."""

    title: str
    start: float


@dataclass(frozen=True, slots=True)
class Loudness:
    """An EBU R128 measurement by ffmpeg's ``loudnorm`` (LUFS, dBTP, LU)."""

    integrated: float
    true_peak: float
    lra: float
    threshold: float
    offset: float


@functools.cache
def ffmpeg_exe() -> str:
    """The ffmpeg to run: the one on ``PATH``, else the one imageio-ffmpeg ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        raise ConfigError("no ffmpeg: install ffmpeg, or reinstall narrator") from exc


def format_of(path: Path, explicit: str | None = None) -> str:
    """The output format: ``explicit`` if given, else ``path``'s extension."""
    name = (explicit or path.suffix.lstrip(".")).lower()
    if name not in FORMATS:
        given = f"--format {explicit}" if explicit else f"{path.name}"
        raise ConfigError(
            f"{given}: unknown audio format; choose one of {', '.join(FORMATS)} "
            "(by the output's extension or --format)"
        )
    return name


def _bound(seconds: float) -> float:
    """How long ffmpeg may take over ``seconds`` of audio: real time plus ten minutes.

    It works many times faster than real time, so only a stuck ffmpeg meets this bound.
    """
    return 600.0 + max(0.0, seconds)


def _run(args: Sequence[str], what: str, *, audio_seconds: float = 0.0) -> str:
    """Run ffmpeg with ``args``; return its stderr, or raise AudioError with its last words."""
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", *args]
    limit = _bound(audio_seconds)
    try:
        done = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=limit
        )
    except subprocess.TimeoutExpired as exc:
        raise AudioError(f"ffmpeg could not {what}: no result after {limit:.0f} s") from exc
    except OSError as exc:
        raise AudioError(f"cannot run ffmpeg ({cmd[0]}): {exc.strerror or exc}") from exc
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode:
        last = [line for line in stderr.splitlines() if line.strip()][-2:]
        raise AudioError(f"ffmpeg could not {what}: {' / '.join(last) or done.returncode}")
    return stderr


def _loudnorm(target: float, true_peak: float, lra: float) -> str:
    return f"loudnorm=I={target}:TP={true_peak}:LRA={lra}"


def measure_loudness(
    source: Path, *, target: float = -18.0, true_peak: float = -1.5, lra: float = 11.0
) -> Loudness:
    """The first loudnorm pass: measure ``source`` as a whole."""
    stderr = _run(
        ["-i", str(source), "-af", _loudnorm(target, true_peak, lra) + ":print_format=json",
         "-f", "null", "-"],
        f"measure the loudness of {source.name}",
        audio_seconds=_longest(source),
    )  # fmt: skip
    found = re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", stderr)
    if found is None:
        raise AudioError(f"ffmpeg measured no loudness for {source.name}")
    data = json.loads(found.group(0))
    return Loudness(
        integrated=float(data["input_i"]),
        true_peak=float(data["input_tp"]),
        lra=float(data["input_lra"]),
        threshold=float(data["input_thresh"]),
        offset=float(data["target_offset"]),
    )


def normalize_wav(
    source: Path,
    output: Path,
    *,
    rate: int,
    width: int,
    target: float = -18.0,
    true_peak: float = -1.5,
    lra: float = 11.0,
) -> Loudness:
    """Write ``source`` to ``output`` (WAV, ``rate`` Hz, ``width`` bytes) at ``target`` LUFS.

    Two passes over the whole file: measure, then apply loudnorm with the measurement
    (linear, a single gain, when the true-peak limit allows). Returns the first pass's
    measurement. A silent book cannot be normalised and is copied unchanged.
    """
    measured = measure_loudness(source, target=target, true_peak=true_peak, lra=lra)
    if not math.isfinite(measured.integrated) or not math.isfinite(measured.threshold):
        shutil.copyfile(source, output)
        return measured
    second = (
        f"{_loudnorm(target, true_peak, lra)}:measured_I={measured.integrated}"
        f":measured_TP={measured.true_peak}:measured_LRA={measured.lra}"
        f":measured_thresh={measured.threshold}:offset={measured.offset}:linear=true"
        # loudnorm works at 192 kHz; bring the book back to its own rate
        f",aresample={rate}"
    )
    _run(
        ["-y", "-i", str(source), "-af", second, "-c:a", _PCM_CODECS[width], "-rf64", "auto",
         "-f", "wav", str(output)],
        f"normalise the loudness of {source.name}",
        audio_seconds=_longest(source),
    )  # fmt: skip
    return measured


def _escape(value: str) -> str:
    """A value for an ffmetadata file: control characters gone (a chapter title comes
    from the document), its special characters backslash-escaped."""
    return re.sub(r"([=;#\\\n])", r"\\\1", " ".join(strip_controls(value).split()))


def _ffmetadata(meta: Metadata, chapters: Sequence[ChapterMark], end: float) -> str:
    lines = [";FFMETADATA1"]
    for key, value in _tag_values(meta).items():
        lines.append(f"{key}={_escape(value)}")
    for mark, stop in _spans(chapters, end):
        lines += [
            "[CHAPTER]",
            "TIMEBASE=1/1000",
            f"START={round(mark.start * 1000)}",
            f"END={max(round(stop * 1000), round(mark.start * 1000))}",
            f"title={_escape(mark.title)}",
        ]
    return "\n".join(lines) + "\n"


def _spans(chapters: Sequence[ChapterMark], end: float) -> list[tuple[ChapterMark, float]]:
    """Each chapter with where it stops: the next one's start, the last one at ``end``.

    Empty for no chapters (a document without headings has none).
    """
    stops = [mark.start for mark in chapters[1:]] + [end]
    return list(zip(chapters, stops[: len(chapters)], strict=True))


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
    token = secrets.token_hex(4)
    tmp = output.with_name(f".{output.name}.{token}.tmp")
    meta_file = output.with_name(f".{output.name}.{token}.ffmeta")
    args = ["-y"]
    if start > 0:
        args += ["-ss", f"{start:.6f}"]
    if end is not None:
        args += ["-t", f"{end - start:.6f}"]
    args += ["-i", str(source)]
    try:
        if fmt in ("m4b", "m4a"):
            length = (end if end is not None else _wav_seconds(source)) - start
            meta_file.write_text(_ffmetadata(metadata, chapters, length), encoding="utf-8")
            args += ["-i", str(meta_file), "-map", "0:a", "-map_metadata", "1"]
            args += ["-map_chapters", "1" if chapters else "-1"]
        else:
            args += ["-map", "0:a", "-map_metadata", "-1", "-map_chapters", "-1"]
            if fmt == "wav":
                for key, value in _tag_values(metadata).items():
                    args += ["-metadata", f"{key}={value}"]
        args += [*spec.codec, "-f", spec.muxer, str(tmp)]
        seconds = (end if end is not None else _longest(source)) - start
        _run(args, f"write {output.name}", audio_seconds=seconds)
        if fmt == "mp3":
            _tag_mp3(tmp, metadata, chapters)
        elif fmt in _VORBIS:
            _tag_vorbis(tmp, fmt, metadata, chapters)
        elif fmt in ("m4b", "m4a") and metadata.cover:
            _cover_mp4(tmp, metadata.cover)
        with tmp.open("rb+") as fh:  # on disk before it takes the finished book's name
            os.fsync(fh.fileno())
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
        meta_file.unlink(missing_ok=True)
    return output


def _longest(path: Path) -> float:
    """The WAV's length, or for one we cannot read (RF64) the most its size can hold."""
    seconds = _wav_seconds(path)
    if seconds:
        return seconds
    try:
        return path.stat().st_size / 8000  # 8 kHz 8-bit mono: no WAV is longer per byte
    except OSError:
        return 0.0


def _wav_seconds(path: Path) -> float:
    try:
        return read_wav_info(path).seconds
    except (AudioError, OSError):
        return 0.0  # RF64 or unreadable: ffmpeg ends the last chapter at the end anyway


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


def _tag_mp3(path: Path, meta: Metadata, chapters: Sequence[ChapterMark]) -> None:
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
        for cid, (mark, stop_s) in zip(ids, _spans(chapters, total_ms / 1000), strict=True):
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


def _tag_vorbis(path: Path, fmt: str, meta: Metadata, chapters: Sequence[ChapterMark]) -> None:
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


def _cover_mp4(path: Path, cover: Path) -> None:
    from mutagen.mp4 import MP4, MP4Cover

    kind = MP4Cover.FORMAT_PNG if image_mime(cover) == "image/png" else MP4Cover.FORMAT_JPEG
    audio = MP4(path)
    if audio.tags is None:
        audio.add_tags()
    assert audio.tags is not None
    audio.tags["covr"] = [MP4Cover(cover.read_bytes(), imageformat=kind)]
    audio.save()
