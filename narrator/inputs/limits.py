"""Document bombs: how much a document may inflate to, checked before it is parsed.

An EPUB is a zip archive: 546 KB of it can inflate to 256 MB of XHTML, which the EPUB
reader holds in memory whole and the HTML parser then chews on for minutes. So the
archive's directory is read first (the sizes it declares are the most the zip reader
will ever inflate: it stops there and fails the checksum) and an archive that inflates
more than :data:`INFLATE_RATIO` times its own size, or holds more text than the
absolute cap, is refused before anything is inflated. Whatever the kind of document,
the text taken out of it is capped too, so no input makes a run of millions of chunks
by accident.

The directory can lie: a member that declares 1 KB (with the checksum of its first
kilobyte) may hold a stream that inflates to gigabytes, and ``ZipFile.read`` inflates a
member in one call of up to 2 GB before it cuts it to the declared size. So
:func:`inflate_archive` then inflates every member itself, a block at a time, never
more than it declared, and hands the EPUB reader an archive of the stored results:
what the reader sees is bounded by what the members really are.
"""

from __future__ import annotations

import io
import zipfile

from ..errors import InputError

__all__ = [
    "DEFAULT_MAX_TEXT_BYTES",
    "INFLATE_FLOOR",
    "INFLATE_RATIO",
    "MAX_MEMBERS",
    "check_archive",
    "check_text_size",
    "inflate_archive",
]


DEFAULT_MAX_TEXT_BYTES = 20_000_000  # --max-text-mb: a few long novels
# Real EPUBs inflate 2-5 times (text) or barely (images); a bomb, hundreds of times.
INFLATE_RATIO = 50
INFLATE_FLOOR = 10_000_000  # a small EPUB may always inflate to this
MAX_MEMBERS = 20_000
_TEXT_SUFFIXES = (".xhtml", ".html", ".htm", ".xml", ".ncx", ".opf", ".txt", ".css")
_HINT = "(a zip bomb?); raise --max-text-mb if the book is really that big"
_BLOCK = 1 << 20  # inflated a block at a time: the zip reader inflates no more per call
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # the two the EPUB standard allows


def check_archive(data: bytes, *, source: str, max_text_bytes: int) -> None:
    """Refuse an EPUB whose members inflate beyond the caps; nothing is inflated here.

    A file that is not a zip archive at all passes: the EPUB reader says what is wrong.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return
    if len(members) > MAX_MEMBERS:
        raise InputError(f"{source}: an EPUB of {len(members):,} files is not a book {_HINT}")
    total = sum(m.file_size for m in members)
    text = sum(m.file_size for m in members if m.filename.lower().endswith(_TEXT_SUFFIXES))
    allowed = min(INFLATE_RATIO * len(data) + INFLATE_FLOOR, 4 * max_text_bytes)
    if total > allowed:
        raise InputError(
            f"{source}: its {len(data) / 1e3:,.0f} KB inflate to {total / 1e6:,.0f} MB, "
            f"more than the {allowed / 1e6:,.0f} MB allowed {_HINT}"
        )
    if text > max_text_bytes:
        raise InputError(
            f"{source}: its text inflates to {text / 1e6:,.0f} MB, more than "
            f"{max_text_bytes / 1e6:g} MB {_HINT}"
        )


def inflate_archive(data: bytes, *, source: str) -> bytes:
    """``data`` (an archive :func:`check_archive` passed) as a stored archive of the same
    members, each inflated a block at a time and never past the size it declared.

    A member compressed otherwise than stored or deflated, or whose stream does not
    match what it declared (a short stream, a bad checksum), makes an :class:`InputError`.
    A file that is not a zip archive at all comes back as it is.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        return data
    out = io.BytesIO()
    try:
        with archive, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as stored:
            for member in archive.infolist():
                if member.compress_type not in _METHODS:
                    raise InputError(
                        f"{source}: {member.filename!r} is compressed with method "
                        f"{member.compress_type}; an EPUB holds stored or deflated files"
                    )
                if member.is_dir() or member.filename in stored.NameToInfo:
                    continue  # a name twice: the first is the member (no reader wants both)
                with archive.open(member) as inflating, stored.open(member.filename, "w") as sink:
                    while block := inflating.read(_BLOCK):
                        sink.write(block)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as exc:
        raise InputError(f"{source}: not a readable EPUB ({exc})") from exc
    return out.getvalue()


def check_text_size(size: int, *, source: str, max_text_bytes: int, what: str = "text") -> None:
    """Refuse ``size`` bytes of ``what`` over the cap (a file before it is read, or the
    text taken out of a document)."""
    if size > max_text_bytes:
        raise InputError(
            f"{source}: {size / 1e6:,.1f} MB of {what}, more than --max-text-mb "
            f"{max_text_bytes / 1e6:g}; raise it if the document is really that big"
        )
