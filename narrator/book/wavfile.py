"""A WAV file written as its samples arrive: a placeholder header first, the sizes (and a
``LIST/INFO`` chunk of tags after the samples) once the last sample is in.

When the length is not known in advance (a book streamed as it is synthesized) the
header keeps room for RF64's ds64 chunk as a ``JUNK`` chunk (EBU Tech 3306), so a book
that passes the 4 GiB a RIFF file can hold becomes RF64 in place, never truncated.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from ..util.sanitize import strip_controls
from ..util.wav import WavInfo
from .riff import (
    RF64_HEADER,
    check_size,
    junk_fits,
    junk_header,
    rf64_header,
    riff_header,
    too_big_for_riff,
)

__all__: list[str] = []

# ffmpeg's names for the RIFF INFO tags (libavformat/riff.c), so both read them alike.
_INFO_IDS = {
    "title": b"INAM",
    "artist": b"IART",
    "album": b"IPRD",
    "date": b"ICRD",
    "genre": b"IGNR",
    "track": b"IPRT",
}


def info_chunk(tags: Mapping[str, str]) -> bytes:
    """A ``LIST/INFO`` chunk of ``tags`` (ffmpeg's generic names), empty when none map."""
    body = bytearray(b"INFO")
    for key, value in tags.items():
        cid = _INFO_IDS.get(key)
        if cid is None or not value:
            continue
        data = " ".join(strip_controls(value).split()).encode("utf-8") + b"\0"
        body += cid + len(data).to_bytes(4, "little") + data + b"\0" * (len(data) & 1)
    if len(body) == 4:
        return b""
    return b"LIST" + len(body).to_bytes(4, "little") + bytes(body)


class WavFile:
    """A PCM WAV file at ``path``, in ``fmt``, written through :meth:`write`.

    ``rf64``: True or False when the size is known to need RF64 or not; None keeps
    room to decide at the end. ``path`` is created (never clobbered) and left to the
    caller to move into place or remove.
    """

    def __init__(self, path: Path, fmt: WavInfo, *, rf64: bool | None = None) -> None:
        self.path = path
        self.fmt = fmt
        self.written = 0  # data bytes so far
        self._rf64 = rf64
        # "x" never clobbers a file we did not create. Not mkstemp: its files are private
        # (0600), while open() leaves the audiobook's permissions to the umask as usual.
        self._fh: BinaryIO | None = path.open("xb")
        self._fh.write(self._make_header(0, 0))  # a placeholder: sizes come at the end

    def _make_header(self, data_size: int, extra: int) -> bytes:
        if self._rf64 is None:
            if junk_fits(data_size, extra):
                return junk_header(self.fmt, data_size, extra)
            return rf64_header(self.fmt, data_size, extra)
        if self._rf64:
            return rf64_header(self.fmt, data_size, extra)
        return riff_header(self.fmt, data_size, extra)

    def write(self, data: bytes | memoryview, /) -> None:
        assert self._fh is not None
        self._fh.write(data)
        self.written += len(data)

    def close(self, tags: Mapping[str, str] | None = None) -> None:
        """Write the tags after the samples and the real sizes into the header."""
        fh = self._fh
        assert fh is not None
        self._fh = None
        with fh:
            if self._rf64 is False and too_big_for_riff(self.written):
                check_size(self.written, self.path)
            if self.written & 1:
                fh.write(b"\0")  # RIFF chunks are padded to an even length
            info = info_chunk(tags or {})
            fh.write(info)
            fh.seek(0)
            header = self._make_header(self.written, len(info))
            assert self._rf64 is not None or len(header) == RF64_HEADER.size
            fh.write(header)

    def end(self) -> None:
        """The last sample of a part is in; the tags come with :meth:`seal`."""

    def seal(self, tags: Mapping[str, str]) -> None:
        """Finish the file with ``tags`` (see :meth:`close`)."""
        self.close(tags)

    def kill(self) -> None:
        """Abandon the file (see :meth:`discard`)."""
        self.discard()

    def discard(self) -> None:
        """Close without finishing (the caller removes the file)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
