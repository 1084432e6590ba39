"""An EPUB 3 package with Media Overlays: the text lights up, sentence by sentence, as
the audio plays (Thorium, Readest, Apple Books).

One XHTML file per chapter (headings and paragraphs, each sentence a ``<span id>``), one
SMIL overlay per chapter (a ``<par>`` per sentence: its text and its clip of the
chapter's audio), the chapter's audio itself, ``nav.xhtml`` from the chapter titles, the
package document with ``media:duration`` per overlay and for the book, and
``media:active-class`` with its CSS. The text comes from the document, which is not
trusted: it is escaped, and characters XML cannot hold are dropped.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from ..util.atomic import atomic_path
from ..util.image import image_mime
from .readtext import ChapterText
from .tags import Metadata

__all__ = ["ACTIVE_CLASS", "ChapterAudio", "write_epub"]

ACTIVE_CLASS = "-epub-media-overlay-active"
# What XML 1.0 may hold: not C0 controls (but tab, newline, return), surrogates, U+FFFE/F.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_AUDIO_TYPES = {".m4a": "audio/mp4", ".mp3": "audio/mpeg"}

_CSS = f"""body {{ font-family: serif; line-height: 1.5; margin: 1em; }}
h1 {{ font-size: 1.4em; }}
.{ACTIVE_CLASS} {{ background-color: #ffe58a; color: #000; }}
"""


@dataclass(frozen=True, slots=True)
class ChapterAudio:
    """A chapter's audio file (.m4a or .mp3), its length and each sentence's clip."""

    path: Path
    seconds: float
    clips: tuple[tuple[float, float], ...]  # one per sentence, in order, in seconds


def _text(value: str) -> str:
    return escape(_NOT_XML.sub("", value))


def _attr(value: str) -> str:
    return quoteattr(_NOT_XML.sub("", value))


def _clock(seconds: float) -> str:
    """A SMIL full clock value, to the millisecond: ``H:MM:SS.mmm``."""
    ms = max(0, round(seconds * 1000))
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def _name(number: int) -> str:
    return f"chapter-{number:03d}"


def _xhtml(chapter: ChapterText, title: str, lang: str) -> str:
    body: list[str] = []
    for block in chapter.blocks:
        spans: list[str] = []
        for sentence in block.sentences:
            text = sentence.text.rstrip()
            lines = [_text(line) for line in text.split("\n")]
            span = f'<span id="{sentence.id}">{"<br/>".join(lines)}</span>'
            spans.append(span + ("<br/>" if sentence.text.endswith("\n") else ""))
        inner = " ".join(spans).replace("<br/> ", "<br/>")
        tag = "h1" if block.heading else "p"
        body.append(f"<{tag}>{inner}</{tag}>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
        f'<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" '
        f"xml:lang={_attr(lang)} lang={_attr(lang)}>\n"
        f'<head>\n<meta charset="utf-8"/>\n<title>{_text(title)}</title>\n'
        '<link rel="stylesheet" type="text/css" href="style.css"/>\n</head>\n'
        f'<body>\n<section epub:type="chapter" id="chapter">\n'
        + "\n".join(body)
        + "\n</section>\n</body>\n</html>\n"
    )


def _smil(chapter: ChapterText, audio: ChapterAudio, audio_href: str) -> str:
    page = f"{_name(chapter.number)}.xhtml"
    pars = [
        f'<par id="p{s.number}"><text src="{page}#{s.id}"/>'
        f'<audio src="{audio_href}" clipBegin="{begin:.3f}s" clipEnd="{end:.3f}s"/></par>'
        for s, (begin, end) in zip(chapter.sentences, audio.clips, strict=True)
    ]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<smil xmlns="http://www.w3.org/ns/SMIL" xmlns:epub="http://www.idpf.org/2007/ops" '
        'version="3.0">\n<body>\n'
        f'<seq id="seq1" epub:textref="{page}#chapter" epub:type="chapter">\n'
        + "\n".join(pars)
        + "\n</seq>\n</body>\n</smil>\n"
    )


def _nav(chapters: Sequence[tuple[str, str]], title: str, lang: str) -> str:
    items = "\n".join(f'<li><a href="{href}">{_text(name)}</a></li>' for href, name in chapters)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" '
        f"xml:lang={_attr(lang)} lang={_attr(lang)}>\n"
        f'<head>\n<meta charset="utf-8"/>\n<title>{_text(title)}</title>\n</head>\n'
        f'<body>\n<nav epub:type="toc" id="toc">\n<h1>{_text(title)}</h1>\n<ol>\n{items}\n'
        "</ol>\n</nav>\n</body>\n</html>\n"
    )


def _opf(
    meta: Metadata, lang: str, identifier: str, chapters: Sequence[ChapterText],
    audio: Sequence[ChapterAudio], cover: tuple[str, str] | None, modified: datetime.datetime,
) -> str:  # fmt: skip
    durations = [round(a.seconds, 3) for a in audio]
    lines = [
        f'<dc:identifier id="uid">{_text(identifier)}</dc:identifier>',
        f"<dc:title>{_text(meta.title)}</dc:title>",
        f"<dc:language>{_text(lang)}</dc:language>",
    ]
    if meta.author:
        lines.append(f"<dc:creator>{_text(meta.author)}</dc:creator>")
    if meta.year:
        lines.append(f"<dc:date>{_text(meta.year)}</dc:date>")
    stamp = modified.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines.append(f'<meta property="dcterms:modified">{stamp}</meta>')
    for chapter, seconds in zip(chapters, durations, strict=True):
        lines.append(
            f'<meta property="media:duration" refines="#mo{chapter.number}">'
            f"{_clock(seconds)}</meta>"
        )
    lines.append(f'<meta property="media:duration">{_clock(sum(durations))}</meta>')
    lines.append(f'<meta property="media:active-class">{ACTIVE_CLASS}</meta>')
    items = [
        '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>',
        '<item id="css" href="style.css" media-type="text/css"/>',
    ]
    if cover is not None:
        href, mime = cover
        items.append(
            f'<item id="cover" href="{href}" media-type="{mime}" properties="cover-image"/>'
        )
    spine = []
    for chapter, sound in zip(chapters, audio, strict=True):
        n, name = chapter.number, _name(chapter.number)
        mime = _AUDIO_TYPES[sound.path.suffix]
        items += [
            f'<item id="c{n}" href="{name}.xhtml" media-type="application/xhtml+xml" '
            f'media-overlay="mo{n}"/>',
            f'<item id="mo{n}" href="{name}.smil" media-type="application/smil+xml"/>',
            f'<item id="a{n}" href="audio/{name}{sound.path.suffix}" media-type="{mime}"/>',
        ]
        spine.append(f'<itemref idref="c{n}"/>')
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid" '
        f"xml:lang={_attr(lang)}>\n"
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
        + "\n".join(lines)
        + "\n</metadata>\n<manifest>\n"
        + "\n".join(items)
        + "\n</manifest>\n<spine>\n"
        + "\n".join(spine)
        + "\n</spine>\n</package>\n"
    )


_CONTAINER = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
<rootfiles>
<rootfile full-path="OEBPS/package.opf" media-type="application/oebps-package+xml"/>
</rootfiles>
</container>
"""


def write_epub(
    output: Path,
    chapters: Sequence[ChapterText],
    audio: Sequence[ChapterAudio],
    *,
    metadata: Metadata,
    lang: str,
    modified: datetime.datetime | None = None,
) -> Path:
    """Write the read-along book to ``output`` (atomically): ``audio[i]`` is
    ``chapters[i]``'s, with one clip per sentence."""
    if len(chapters) != len(audio):
        raise ValueError(f"{len(chapters)} chapters but {len(audio)} audio files")
    modified = modified or datetime.datetime.now(datetime.UTC)
    digest = hashlib.sha256()
    for chapter in chapters:
        for sentence in chapter.sentences:
            digest.update(sentence.text.encode("utf-8", "surrogatepass"))
    digest.update(metadata.title.encode("utf-8", "surrogatepass"))
    raw = digest.hexdigest()
    identifier = f"urn:uuid:{raw[:8]}-{raw[8:12]}-5{raw[13:16]}-a{raw[17:20]}-{raw[20:32]}"
    cover = None
    if metadata.cover is not None:
        mime = image_mime(metadata.cover)
        cover = (f"cover{'.png' if mime == 'image/png' else '.jpg'}", mime)
    # An untitled chapter is named as the audiobook's chapter marks name it.
    titles = [
        (f"{_name(c.number)}.xhtml", c.title or (metadata.title if n == 0 else f"Chapter {n + 1}"))
        for n, c in enumerate(chapters)
    ]
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp, zipfile.ZipFile(tmp, "w") as book:
        # The mimetype first and stored, so a reader can tell an EPUB by its first bytes.
        book.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip", zipfile.ZIP_STORED)
        deflate = zipfile.ZIP_DEFLATED
        book.writestr("META-INF/container.xml", _CONTAINER, deflate)
        book.writestr(
            "OEBPS/package.opf",
            _opf(metadata, lang, identifier, chapters, audio, cover, modified),
            deflate,
        )
        book.writestr("OEBPS/nav.xhtml", _nav(titles, metadata.title, lang), deflate)
        book.writestr("OEBPS/style.css", _CSS, deflate)
        if cover is not None and metadata.cover is not None:
            book.write(metadata.cover, f"OEBPS/{cover[0]}", zipfile.ZIP_STORED)
        for chapter, sound, (_, name) in zip(chapters, audio, titles, strict=True):
            base = _name(chapter.number)
            href = f"audio/{base}{sound.path.suffix}"
            book.writestr(f"OEBPS/{base}.xhtml", _xhtml(chapter, name, lang), deflate)
            book.writestr(f"OEBPS/{base}.smil", _smil(chapter, sound, href), deflate)
            # Compressed audio gains nothing from deflate.
            book.write(sound.path, f"OEBPS/{href}", zipfile.ZIP_STORED)
    return output
