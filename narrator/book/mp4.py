"""An M4B/M4A finished without a remux: chapters, tags and ``faststart`` written here.

The streaming encoder (ffmpeg's ``ipod`` muxer, no ``faststart``) leaves ``ftyp``,
``mdat``, then ``moov``. ffmpeg's own remux, to add the chapters and move the ``moov``
first, hands every AAC packet between its threads: about 0.4 s per hour of audio, all of
it after the last answer. Here only the ``moov`` is read (about 340 KB an hour of audio),
the chapters (a QuickTime chapter track and a Nero ``chpl``, as ffmpeg writes them) and
the iTunes tags are added, the chunk offsets are moved, and the audio is copied as bytes
(``copy_file_range``, in the kernel). ffmpeg reads the result as it reads its own.
"""

from __future__ import annotations

import errno
import itertools
import os
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from ..errors import AudioError
from ..util.image import image_mime
from ..util.sanitize import strip_controls
from .tags import ChapterMark, Metadata, chapter_spans

__all__ = ["finish_mp4"]

_Box = tuple[bytes, bytes]  # kind, payload
_U32 = 0xFFFFFFFF
# A QuickTime chapter sample ends with this: its text is UTF-8.
_ENCD = struct.pack(">I4sI", 12, b"encd", 0x100)
# What ffmpeg writes for a chapter track's header, sample description and data reference.
_GMIN = bytes.fromhex("00000000004080008000800000000000")
_TEXT = bytes.fromhex("000100000000000000000000000000000001000000000000000000000000000040000000")
_DREF = bytes.fromhex("00000000000000010000000c75726c2000000001")
_STSD_TEXT = bytes.fromhex(
    "00000000000000010000003b7465787400000000000000010000000100000000000000000000"
    "000000000000000000010000000000000000000d667461620001000100"
)
_MATRIX = bytes.fromhex("000100000000000000000000000000000001000000000000000000000000000040000000")
_ILST_NAMES = {
    "title": b"\xa9nam",
    "artist": b"\xa9ART",
    "album_artist": b"aART",
    "album": b"\xa9alb",
    "date": b"\xa9day",
    "genre": b"\xa9gen",
}


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version << 24 | flags), *payload)


def _children(data: bytes) -> list[_Box]:
    boxes: list[_Box] = []
    at = 0
    while at + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        head = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, at + 8)
            head = 16
        elif size == 0:
            size = len(data) - at
        if size < head or at + size > len(data):
            raise AudioError(f"a broken {kind.decode('latin-1')!r} box in the encoded book")
        boxes.append((kind, data[at + head : at + size]))
        at += size
    return boxes


def _join(boxes: Sequence[_Box]) -> bytes:
    return b"".join(_box(kind, payload) for kind, payload in boxes)


def _find(boxes: Sequence[_Box], kind: bytes) -> bytes | None:
    return next((payload for k, payload in boxes if k == kind), None)


def _edit(
    payload: bytes, path: Sequence[bytes | tuple[bytes, ...]], change: Callable[[_Box], _Box]
) -> bytes:
    """``payload`` (a container's) with every box at ``path`` below it changed (a step
    of the path may name several kinds)."""
    out: list[_Box] = []
    for kind, inner in _children(payload):
        if kind == path[0] or (isinstance(path[0], tuple) and kind in path[0]):
            if len(path) == 1:
                kind, inner = change((kind, inner))
            else:
                inner = _edit(inner, path[1:], change)
        out.append((kind, inner))
    return _join(out)


def _top_level(source: Path) -> tuple[bytes, int, int, bytes]:
    """The encoded file's ``ftyp``, where its ``mdat`` payload starts and its size, and
    its ``moov`` payload."""
    ftyp = moov = None
    mdat: tuple[int, int] | None = None
    with source.open("rb") as fh:
        end = os.fstat(fh.fileno()).st_size
        at = 0
        while at + 8 <= end:
            fh.seek(at)
            size, kind = struct.unpack(">I4s", fh.read(8))
            head = 8
            if size == 1:
                (size,) = struct.unpack(">Q", fh.read(8))
                head = 16
            elif size == 0:
                size = end - at
            if size < head:
                break
            if kind == b"ftyp":
                ftyp = _box(kind, fh.read(size - head))
            elif kind == b"moov":
                moov = fh.read(size - head)
            elif kind == b"mdat":
                mdat = (at + head, size - head)
            at += size
    if ftyp is None or moov is None or mdat is None:
        raise AudioError(f"{source.name}: the encoder left no complete MP4 (ftyp, mdat, moov)")
    return ftyp, *mdat, moov


def _clean(text: str, limit: int) -> bytes:
    """``text`` as one line of UTF-8 (controls gone), at most ``limit`` bytes."""
    raw = " ".join(strip_controls(text).split()).encode("utf-8")[:limit]
    return raw.decode("utf-8", "ignore").encode("utf-8")


def _ilst(values: dict[str, str], meta: Metadata) -> bytes:
    items = []
    for key, value in values.items():
        if key in _ILST_NAMES:
            data = struct.pack(">II", 1, 0) + _clean(value, 1 << 20)
            items.append(_box(_ILST_NAMES[key], _box(b"data", data)))
    if meta.track:
        number, total = meta.track
        data = struct.pack(">IIHHHH", 0, 0, 0, number & 0xFFFF, total & 0xFFFF, 0)
        items.append(_box(b"trkn", _box(b"data", data)))
    if meta.cover:
        kind = 14 if image_mime(meta.cover) == "image/png" else 13
        data = struct.pack(">II", kind, 0) + meta.cover.read_bytes()
        items.append(_box(b"covr", _box(b"data", data)))
    handler = _full(b"hdlr", 0, 0, struct.pack(">I4s4sII", 0, b"mdir", b"appl", 0, 0), b"\0")
    return _full(b"meta", 0, 0, handler, _box(b"ilst", *items))


def _chpl(spans: Sequence[tuple[ChapterMark, float]]) -> bytes:
    """Nero's chapter list (read by ffmpeg and many players): at most 255 chapters."""
    entries = [struct.pack(">B", min(len(spans), 255))]
    for mark, _ in spans[:255]:
        title = _clean(mark.title, 255)
        entries.append(struct.pack(">QB", round(mark.start * 10_000_000), len(title)) + title)
    return _full(b"chpl", 1, 0, b"\0\0\0\0", *entries)


def _versioned(value: int) -> int:
    return 1 if value > _U32 else 0


def _chapter_trak(
    spans: Sequence[tuple[ChapterMark, float]],
    *,
    track_id: int,
    timescale: int,
    duration: int,
    samples_at: int,
    wide: bool,
) -> tuple[bytes, bytes]:
    """The QuickTime chapter track (what Apple's players read) and its samples."""
    samples = []
    for mark, _ in spans:
        title = _clean(mark.title, 0xFFFF)
        samples.append(struct.pack(">H", len(title)) + title + _ENCD)
    ticks = [round(mark.start * timescale) for mark, _ in spans] + [duration]
    ticks[0] = 0  # the track starts with the book
    deltas = [max(0, b - a) for a, b in itertools.pairwise(ticks)]
    v = _versioned(duration)
    span = ">Q" if v else ">I"
    tkhd = _full(
        b"tkhd", v, 2,
        struct.pack(f">{'QQ' if v else 'II'}II", 0, 0, track_id, 0),
        struct.pack(span, duration), bytes(8), struct.pack(">HHHH", 0, 0, 0, 0),
        _MATRIX, struct.pack(">II", 0, 0),
    )  # fmt: skip
    edit = struct.pack(">QQ" if v else ">II", duration, 0)
    elst = _full(b"elst", v, 0, struct.pack(">I", 1), edit, struct.pack(">I", 0x10000))
    mdhd = _full(
        b"mdhd", v, 0, struct.pack(f">{'QQ' if v else 'II'}I", 0, 0, timescale),
        struct.pack(span, duration), struct.pack(">HH", 0, 0),
    )  # fmt: skip
    hdlr = _full(b"hdlr", 0, 0, struct.pack(">I4sIII", 0, b"text", 0, 0, 0), b"SubtitleHandler\0")
    stts = _full(b"stts", 0, 0, struct.pack(f">I{2 * len(deltas)}I", len(deltas),
                 *[x for d in deltas for x in (1, d)]))  # fmt: skip
    stsc = _full(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, len(samples), 1))
    stsz = _full(b"stsz", 0, 0, struct.pack(f">II{len(samples)}I", 0, len(samples),
                 *map(len, samples)))  # fmt: skip
    table = (b"co64", ">IQ") if wide else (b"stco", ">II")
    stco = _full(table[0], 0, 0, struct.pack(table[1], 1, samples_at))
    stbl = _box(b"stbl", _box(b"stsd", _STSD_TEXT), stts, stsc, stsz, stco)
    minf = _box(b"minf", _box(b"gmhd", _box(b"gmin", _GMIN), _box(b"text", _TEXT)),
                _box(b"dinf", _box(b"dref", _DREF)), stbl)  # fmt: skip
    trak = _box(b"trak", tkhd, _box(b"edts", elst), _box(b"mdia", mdhd, hdlr, minf))
    return trak, b"".join(samples)


def _moved(shift: int, wide: bool) -> Callable[[_Box], _Box]:
    """Move a chunk offset table by ``shift`` bytes (``wide``: as 64-bit ``co64``)."""

    def change(box: _Box) -> _Box:
        kind, payload = box
        (count,) = struct.unpack_from(">I", payload, 4)
        size = "Q" if kind == b"co64" else "I"
        offsets = struct.unpack_from(f">{count}{size}", payload, 8)
        moved = [o + shift for o in offsets]
        if wide:
            return b"co64", payload[:8] + struct.pack(f">{count}Q", *moved)
        return kind, payload[:8] + struct.pack(f">{count}{size}", *moved)

    return change


def _moov(
    moov: bytes,
    shift: int,
    meta: Metadata,
    tags: dict[str, str],
    spans: Sequence[tuple[ChapterMark, float]],
    samples_at: int,
    wide: bool,
) -> tuple[bytes, bytes]:
    """The new ``moov`` (offsets moved by ``shift``) and the chapter samples to put at
    ``samples_at``."""
    boxes = [(k, p) for k, p in _children(moov) if k != b"udta"]
    mvhd = _find(boxes, b"mvhd")
    if mvhd is None or not any(k == b"trak" for k, _ in boxes):
        raise AudioError("the encoded book has no movie header or no track")
    v1 = mvhd[0] == 1
    (timescale,) = struct.unpack_from(">I", mvhd, 20 if v1 else 12)
    (duration,) = struct.unpack_from(">Q" if v1 else ">I", mvhd, 24 if v1 else 16)
    (next_id,) = struct.unpack_from(">I", mvhd, len(mvhd) - 4)
    stbl: list[bytes | tuple[bytes, ...]] = [b"mdia", b"minf", b"stbl"]
    out: list[_Box] = []
    samples = b""
    for kind, payload in boxes:
        if kind == b"trak":
            payload = _edit(payload, [*stbl, (b"stco", b"co64")], _moved(shift, wide))
            if spans and not any(k == b"trak" for k, _ in out):  # the audio points to them
                inner = _children(payload)
                tref = (b"tref", _box(b"chap", struct.pack(">I", next_id)))
                inner.insert(next(i for i, (k, _) in enumerate(inner) if k == b"mdia"), tref)
                payload = _join(inner)
        elif kind == b"mvhd" and spans:
            payload = payload[:-4] + struct.pack(">I", next_id + 1)
        out.append((kind, payload))
    body = _join(out)
    if spans:
        trak, samples = _chapter_trak(
            spans, track_id=next_id, timescale=timescale, duration=duration,
            samples_at=samples_at, wide=wide,
        )  # fmt: skip
        body += trak
    udta = _box(b"udta", _ilst(meta_values(tags), meta), _chpl(spans) if spans else b"")
    return _box(b"moov", body, udta), samples


def meta_values(tags: dict[str, str]) -> dict[str, str]:
    """The tags an ``ilst`` holds as text (the track number is written apart)."""
    return {k: v for k, v in tags.items() if k in _ILST_NAMES}


def finish_mp4(
    source: Path,
    output: Path,
    *,
    metadata: Metadata,
    tags: dict[str, str],
    chapters: Sequence[ChapterMark],
    seconds: float,
) -> None:
    """Write ``output`` from ``source`` (what the streaming encoder left): ``moov``
    first with ``chapters`` and ``tags`` (ffmpeg's generic names) in it, then the audio,
    copied as it is. ``output`` is a fresh path (the caller makes it appear atomically)."""
    ftyp, audio_at, audio_size, moov = _top_level(source)
    spans = chapter_spans(chapters, seconds)
    wide = source.stat().st_size + (64 << 20) > _U32
    # The moov's size does not depend on the offsets in it: build it once to measure.
    probe, samples = _moov(moov, 0, metadata, tags, spans, 0, wide)
    payload = len(samples) + audio_size
    head = 16 if payload + 8 > _U32 else 8
    samples_at = len(ftyp) + len(probe) + head
    shift = samples_at + len(samples) - audio_at
    new_moov, samples = _moov(moov, shift, metadata, tags, spans, samples_at, wide)
    if len(new_moov) != len(probe):
        raise AudioError("the book's moov changed size while its offsets were moved")
    mdat = (
        struct.pack(">I4sQ", 1, b"mdat", 16 + payload)
        if head == 16
        else struct.pack(">I4s", 8 + payload, b"mdat")
    )
    with source.open("rb") as src, output.open("xb") as dst:
        dst.write(ftyp + new_moov + mdat + samples)
        dst.flush()
        _copy(src, dst, audio_at, audio_size)


def _copy(src: BinaryIO, dst: BinaryIO, offset: int, size: int) -> None:
    """``size`` bytes of ``src`` from ``offset`` appended to ``dst``: in the kernel when
    it can, else through a buffer."""
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(src.fileno(), dst.fileno(), size - done, offset + done)
            if n == 0:
                raise AudioError("the encoded book ended before its audio did")
            done += n
        return
    except (AttributeError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno not in _NO_KERNEL_COPY:
            raise
    dst.seek(0, os.SEEK_END)
    src.seek(offset + done)
    left = size - done
    while left:
        block = src.read(min(left, 1 << 20))
        if not block:
            raise AudioError("the encoded book ended before its audio did")
        dst.write(block)
        left -= len(block)
    dst.flush()


# copy_file_range refused (another file system, an old kernel): copy through a buffer.
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM)
