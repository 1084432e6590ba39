"""Tests for the podcast feed: real audiobooks in a folder, the feed parsed back as XML."""

from __future__ import annotations

import email.utils
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from narrator.book.audiobook import AudiobookOptions, make_audiobook
from narrator.book.feed import ITUNES, write_feed
from narrator.book.stitch import Piece
from narrator.chunks.split import Chunk
from narrator.errors import ConfigError, InputError
from narrator.inputs.documents import parse_text
from narrator.util.wav import tone_pcm, wav_bytes

from .conftest import run_cli


def narrated(folder: Path, name: str, title: str, seconds: float) -> Path:
    """A real audiobook made the way the pipeline makes one."""
    seg = folder / f".{name}.seg.wav"
    seg.write_bytes(wav_bytes(tone_pcm(seconds, 24000), 24000))
    out = folder / name
    doc = parse_text(f"# {title}\n\nText.")
    make_audiobook(doc, [Chunk(0, 0, title, 5, True)], [Piece(seg, 0)], out, AudiobookOptions())
    seg.unlink()
    return out


@pytest.fixture
def shelf(tmp_path: Path) -> Path:
    folder = tmp_path / "shelf"
    (folder / "more").mkdir(parents=True)
    narrated(folder, "first.mp3", "First Article", 1.0)
    narrated(folder / "more", "second part.m4a", "Second & Last", 2.0)
    narrated(folder, "third.opus", "Third", 0.5)
    (folder / "notes.txt").write_text("not audio")
    return folder


def test_the_feed_lists_every_audiobook_with_its_enclosure(shelf: Path) -> None:
    result = write_feed(shelf, base_url="https://example.org/pods", title="My Articles")

    root = ET.parse(shelf / "feed.xml").getroot()
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = root.find("channel")
    assert channel is not None and channel.findtext("title") == "My Articles"
    items = channel.findall("item")
    assert len(items) == 3 == len(result.items)
    by_url = {item.find("enclosure").get("url"): item for item in items}  # type: ignore[union-attr]
    expected = {
        "https://example.org/pods/first.mp3": (shelf / "first.mp3", "audio/mpeg", "First Article"),
        "https://example.org/pods/more/second%20part.m4a": (
            shelf / "more" / "second part.m4a", "audio/x-m4a", "Second & Last"),
        "https://example.org/pods/third.opus": (shelf / "third.opus", "audio/ogg", "Third"),
    }  # fmt: skip
    assert set(by_url) == set(expected)
    for url, (path, mime, title) in expected.items():
        item = by_url[url]
        enclosure = item.find("enclosure")
        assert enclosure is not None
        assert int(enclosure.get("length", "0")) == path.stat().st_size
        assert enclosure.get("type") == mime
        assert item.findtext("title") == title
        assert item.findtext("guid") == url
        assert email.utils.parsedate_to_datetime(item.findtext("pubDate") or "") is not None
    durations = {url: by_url[url].findtext(f"{{{ITUNES}}}duration") for url in by_url}
    assert durations["https://example.org/pods/more/second%20part.m4a"] == "0:00:02"


def test_an_empty_folder_or_a_bad_url_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no audiobooks"):
        write_feed(tmp_path, base_url="https://example.org/")
    with pytest.raises(ConfigError, match="http"):
        write_feed(tmp_path, base_url="example.org")


async def test_narrator_feed_writes_feed_xml(shelf: Path) -> None:
    result = await run_cli("feed", str(shelf), "--base-url", "http://127.0.0.1:8000/")
    assert result.code == 0, result.stderr
    assert "3 episodes" in result.stdout
    channel = ET.parse(shelf / "feed.xml").getroot().find("channel")
    assert channel is not None and channel.findtext("title") == "shelf"
