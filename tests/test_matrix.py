"""Every input kind into every output format, as a user runs them: the real `narrator`
process with the offline voice, each book decoded again by ffmpeg.

One run per format narrates every kind of input at once (plain text with and without
headings, Markdown, HTML, EPUB, a folder, standard input and a page from a loopback
server), so the matrix costs seven processes, not fifty. The cache is shared by the
module: the first run synthesizes, the others only stitch and encode.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from ebooklib import epub

from narrator.book.encode import FORMATS, ffmpeg_exe

from .conftest import run_cli

PLAIN = """The kettle clicked off while the rain kept on at the window.

Mara poured the water over the leaves and waited, counting under her breath.
"""

HEADED = """# Morning

The ferry left at seven, half empty, its horn low over the water.

# Evening

By dusk the wind had dropped and the harbour lights came on one by one.
"""

MARKDOWN = """# Field Notes

Written on a walk by the river.

## Birds

We saw **three herons** on the [north bank](https://example.org/bank), standing still.

## Plants

- Reeds along the path.
- Wild mint by the gate.
"""

HTML = """<!doctype html><html><head><title>The Lighthouse Keeper</title></head><body>
<nav><a href="/">Home</a> <a href="/news">News</a></nav>
<article><h1>The Lighthouse Keeper</h1>
<p>A life spent looking after one light on a rocky coast.</p>
<h2>Early Years</h2>
<p>He climbed the hundred steps every night for thirty years, winter and summer alike.</p>
<h2>Retirement</h2>
<p>Now he walks to the point each evening to watch the light turn over the sea.</p>
</article><footer>Copyright Coast Weekly.</footer></body></html>
"""

STDIN = "A voice from standard input, read once and spoken plainly."

FOLDER_TEXT = "A note kept in a folder, spoken like any other file."

# Chapter titles each book must carry, where its format can hold chapter marks.
CHAPTERS = {
    "plain": [],
    "headed": ["Morning", "Evening"],
    "notes": ["Field Notes", "Birds", "Plants"],
    "book": ["The Harbour", "The Storm"],
    "page": ["The Lighthouse Keeper", "Early Years", "Retirement"],
    "stdin": [],
    "inside": [],
}
# Formats whose chapter marks ffmpeg reads back (WAV has none players read).
WITH_CHAPTERS = {"mp3", "m4b", "m4a", "flac", "ogg", "opus"}
FAST = ("--provider", "espeak", "--rpm", "100000", "--concurrency", "2", "--quiet")


def make_epub(path: Path) -> None:
    book = epub.EpubBook()
    book.set_identifier("narrator-matrix")
    book.set_title("Two Tides")
    book.set_language("en")
    first = epub.EpubHtml(title="The Harbour", file_name="harbour.xhtml", lang="en")
    first.content = "<html><body><h1>The Harbour</h1><p>The harbour was quiet.</p></body></html>"
    second = epub.EpubHtml(title="The Storm", file_name="storm.xhtml", lang="en")
    second.content = "<html><body><h1>The Storm</h1><p>Then the wind rose.</p></body></html>"
    for item in (first, second):
        book.add_item(item)
    book.toc = [
        epub.Link("harbour.xhtml", "The Harbour", "h"),
        epub.Link("storm.xhtml", "The Storm", "s"),
    ]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = [first, second]
    epub.write_epub(str(path), book)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    (root / "plain.txt").write_text(PLAIN)
    (root / "headed.txt").write_text(HEADED)
    (root / "notes.md").write_text(MARKDOWN)
    make_epub(root / "book.epub")
    (root / "folder").mkdir()
    (root / "folder" / "inside.txt").write_text(FOLDER_TEXT)
    (root / "site").mkdir()
    (root / "site" / "page.html").write_text(HTML)
    return root


@pytest.fixture(scope="module")
def site(corpus: Path) -> Iterator[str]:
    """A loopback web server for the URL input."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(corpus / "site"), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/page.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def decoded_seconds(path: Path) -> float:
    """Decode the whole file with ffmpeg; its length from the samples that came out."""
    done = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path),
         "-f", "s16le", "-ac", "1", "-ar", "8000", "-"],
        capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr.decode()
    return len(done.stdout) / 2 / 8000


def chapter_titles(path: Path) -> list[str]:
    """The chapter marks ffmpeg reads from the file, as their titles in time order."""
    done = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    text = done.stdout.decode()
    sections = text.split("[CHAPTER]")[1:]
    marks = []
    for section in sections:
        start = re.search(r"^START=(\d+)$", section, re.M)
        title = re.search(r"^title=(.*)$", section, re.M)
        assert start is not None, section
        marks.append((int(start.group(1)), title.group(1) if title else ""))
    return [title for _, title in sorted(marks)]


def check_book(path: Path, fmt: str, seconds: float, chapters: list[str]) -> None:
    assert path.is_file() and path.stat().st_size > 0, path
    got = decoded_seconds(path)
    # Lossy codecs pad a little at the ends; 0.25 s is far below one spoken word.
    assert abs(got - seconds) < 0.25, (path, got, seconds)
    if fmt in WITH_CHAPTERS:
        assert chapter_titles(path) == chapters, path
    else:
        assert chapter_titles(path) == []


async def narrate(*args: str, cwd: Path, stdin: bytes = b"") -> dict:  # type: ignore[type-arg]
    result = await run_cli("narrate", *args, "--report", "report.json", *FAST, cwd=cwd, stdin=stdin)
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads((cwd / "report.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
async def test_every_input_into_every_format(
    corpus: Path, site: str, cache: Path, fmt: str
) -> None:
    out = corpus / f"out-{fmt}"
    report = await narrate(
        "plain.txt", "headed.txt", "notes.md", "book.epub", "folder", site, "-",
        "-o", str(out), "--format", fmt, "--cache-dir", str(cache), "--allow-host", "127.0.0.1",
        cwd=corpus, stdin=STDIN.encode(),
    )  # fmt: skip
    docs = report["documents"]
    assert [d["status"] for d in docs] == ["done"] * 7
    for doc in docs:
        (file,) = doc["files"]
        path = corpus / file
        name = Path(file).stem
        key = "page" if name.startswith("The Lighthouse") else name
        check_book(path, fmt, doc["audio_seconds"], CHAPTERS[key])
        # an offline voice speaks about 2 to 4 words a second
        words = len(re.findall(r"\w+", open_text(corpus, key)))
        assert 0.15 * words < doc["audio_seconds"] < 0.8 * words, (key, doc["audio_seconds"])


def open_text(corpus: Path, key: str) -> str:
    return {
        "plain": PLAIN,
        "headed": HEADED,
        "notes": MARKDOWN,
        "book": "The Harbour The harbour was quiet. The Storm Then the wind rose.",
        "page": re.sub(r"<[^>]+>", " ", HTML.split("<article>")[1].split("</article>")[0]),
        "stdin": STDIN,
        "inside": FOLDER_TEXT,
    }[key]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
async def test_split_hours_with_and_without_chapters(corpus: Path, cache: Path, fmt: str) -> None:
    out = corpus / f"split-{fmt}"
    args = (
        "plain.txt", "headed.txt", "-o", str(out), "--format", fmt, "--cache-dir", str(cache),
        # parts of at most 3.6 s, chunks of a sentence or so: every book comes in parts
        "--split-hours", "0.001", "--max-chars", "40",
    )  # fmt: skip
    report = await narrate(*args, cwd=corpus)
    made: dict[str, int] = {}
    for doc in report["documents"]:
        assert doc["status"] == "done"
        files = [corpus / f for f in doc["files"]]
        assert len(files) >= 2, doc
        stem = Path(doc["output"]).stem
        assert [f.name for f in files] == [
            f"{stem}-{n:02d}.{fmt}" for n in range(1, len(files) + 1)
        ]
        assert not (corpus / doc["output"]).exists()
        # the parts together are the whole book, and every chapter mark is in some part
        assert abs(sum(decoded_seconds(f) for f in files) - doc["audio_seconds"]) < 0.25 * len(
            files
        )
        if fmt in WITH_CHAPTERS:
            seen = [t for f in files for t in chapter_titles(f)]
            expected = CHAPTERS[stem]
            assert [t for t in expected if t in seen] == expected
            assert all(t in expected for t in seen)
        for f in files:
            made[str(f)] = f.stat().st_mtime_ns
    # Nothing changed: nothing is made again, and the summary still lists every part.
    result = await run_cli("narrate", *args, "--report", "again.json", *FAST, cwd=corpus)
    assert result.code == 0, result.stderr
    again = json.loads((corpus / "again.json").read_text())
    assert [d["status"] for d in again["documents"]] == ["up-to-date"] * 2
    for doc in again["documents"]:
        for f in doc["files"]:
            assert (corpus / f).stat().st_mtime_ns == made[str(corpus / f)]
            assert Path(f).name in result.stdout
    assert sorted(str(corpus / f) for d in again["documents"] for f in d["files"]) == sorted(made)
    # A part removed by hand makes the book again.
    Path(next(iter(made))).unlink()
    third = await narrate(*args, cwd=corpus)
    assert sorted(d["status"] for d in third["documents"]) == ["done", "up-to-date"]


async def test_subtitles_and_normalize_on_a_book_without_chapters(
    corpus: Path, cache: Path
) -> None:
    report = await narrate(
        "plain.txt", "-o", "plain-sub.m4b", "--subtitles", "srt", "--normalize",
        "--cache-dir", str(cache), cwd=corpus,
    )  # fmt: skip
    (doc,) = report["documents"]
    check_book(corpus / "plain-sub.m4b", "m4b", doc["audio_seconds"], [])
    srt = (corpus / "plain-sub.srt").read_text()
    assert "kettle clicked off" in srt and "Mara poured" in srt
