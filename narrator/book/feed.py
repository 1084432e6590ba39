"""A podcast feed of a folder of audiobooks: RSS 2.0 with the iTunes tags podcast apps expect.

Every audio file under the folder (by extension, hidden files skipped) becomes one
episode: its title and author from its own tags (read with mutagen), else its file
name; an enclosure with its URL under ``base_url``, its size in bytes and its MIME
type; its duration; a GUID that stays the same while the file keeps its name; and its
modification time as publication date. Newest first.
"""

from __future__ import annotations

import email.utils
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO
from urllib.parse import quote

from ..errors import ConfigError, InputError
from ..util.atomic import atomic_path
from ..util.sanitize import tag_text
from .encode import FORMATS

__all__ = ["Episode", "FeedResult", "write_feed"]

ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
ET.register_namespace("itunes", ITUNES)


@dataclass(frozen=True, slots=True)
class Episode:
    """One audiobook in the feed."""

    path: Path
    url: str
    title: str
    author: str | None
    length: int  # bytes
    mime: str
    seconds: float | None
    published: datetime


@dataclass(frozen=True, slots=True)
class FeedResult:
    """The feed written and its episodes, newest first."""

    path: Path
    items: tuple[Episode, ...]


def _tags(fh: BinaryIO) -> tuple[str | None, str | None, float | None]:
    """Title, author and duration from the file's own tags, where mutagen can read them."""
    import mutagen

    try:
        audio = mutagen.File(fh, easy=True)
    except Exception:  # mutagen raises many kinds for odd files; the file name will do
        return None, None, None
    if audio is None:
        return None, None, None
    seconds = getattr(audio.info, "length", None) or None

    def first(key: str) -> str | None:
        try:
            values = audio.get(key) if audio.tags is not None else None
        except (KeyError, ValueError):
            return None
        return str(values[0]) if values else None

    return first("title"), first("artist"), seconds


def _quoted(part: str) -> str:
    # The bytes of the name, even when they are not UTF-8: the URL must serve the file.
    return quote(part, errors="surrogateescape")


def _duration(seconds: float) -> str:
    total = round(seconds)
    return f"{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}"


def _episodes(folder: Path, base_url: str) -> list[Episode]:
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in FORMATS:
            continue
        try:
            # Opened once: its size and its tags are of one file, and a FIFO swapped in
            # since the listing cannot hang the open (a regular file or nothing).
            with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
                stat = os.fstat(fh.fileno())
                if not S_ISREG(stat.st_mode):
                    continue
                title, author, seconds = _tags(fh)
        except OSError:  # gone since it was listed
            continue
        found.append(
            Episode(
                path=path,
                url=base_url + "/".join(_quoted(part) for part in rel.parts),
                title=title or path.stem.replace("_", " "),
                author=author,
                length=stat.st_size,
                mime=FORMATS[fmt].mime,
                seconds=seconds,
                published=datetime.fromtimestamp(stat.st_mtime, UTC),
            )
        )
    found.sort(key=lambda e: (e.published, e.url), reverse=True)
    return found


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: tag_text(v) for k, v in attrs.items()})
    element.text = tag_text(text)  # XML 1.0 cannot hold most control characters
    return element


def write_feed(folder: Path, *, base_url: str, title: str | None = None) -> FeedResult:
    """Write ``folder/feed.xml`` listing every audiobook under ``folder``.

    ``base_url`` is where ``folder`` is served (a trailing slash is added if missing).
    Raises :class:`ConfigError` for a base URL that is not http(s), and
    :class:`InputError` when ``folder`` is missing or holds no audiobooks.
    """
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"--base-url must start with http:// or https://, not {base_url!r}")
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    episodes = _episodes(folder, base_url)
    if not episodes:
        raise InputError(
            f"{folder}: no audiobooks ({', '.join('.' + f for f in FORMATS)}) to put in a feed"
        )
    name = title or folder.resolve().name or "Audiobooks"
    rss = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(rss, "channel")
    _text(channel, "title", name)
    _text(channel, "link", base_url)
    _text(channel, "description", f"{name}: audiobooks narrated by narrator")
    _text(channel, "generator", "narrator")
    _text(channel, "lastBuildDate", email.utils.format_datetime(episodes[0].published))
    _text(channel, f"{{{ITUNES}}}author", episodes[0].author or name)
    _text(channel, f"{{{ITUNES}}}explicit", "false")
    _text(channel, f"{{{ITUNES}}}type", "episodic")
    for episode in episodes:
        item = ET.SubElement(channel, "item")
        _text(item, "title", episode.title)
        _text(item, f"{{{ITUNES}}}title", episode.title)
        if episode.author:
            _text(item, f"{{{ITUNES}}}author", episode.author)
        ET.SubElement(
            item,
            "enclosure",
            {"url": episode.url, "length": str(episode.length), "type": episode.mime},
        )
        _text(item, "guid", episode.url, isPermaLink="false")
        _text(item, "pubDate", email.utils.format_datetime(episode.published))
        if episode.seconds is not None:
            _text(item, f"{{{ITUNES}}}duration", _duration(episode.seconds))
    ET.indent(rss)
    target = folder / "feed.xml"
    with atomic_path(target) as tmp:
        ET.ElementTree(rss).write(tmp, encoding="utf-8", xml_declaration=True)
    return FeedResult(target, tuple(episodes))
