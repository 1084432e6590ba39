"""Read along: the EPUB 3 with Media Overlays, held to EPUBCheck, Chromium and its own SMIL.

The books are made by the real command line with the offline voice (eSpeak NG: real
speech, with real pauses), an English and a Chinese one with chapters. The timing's
accuracy is checked against speech whose sentence starts are known by construction
(:mod:`narrator.tools.emulator.timed`); its figures belong to ``make bench``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest

from narrator.book.audiobook import AudiobookOptions, make_audiobook
from narrator.book.joiner import Piece
from narrator.book.readtext import book_text
from narrator.book.timings import Pause, place
from narrator.chunks.split import split_document
from narrator.cli import main
from narrator.errors import ConfigError
from narrator.inputs.documents import parse_text
from narrator.tools.bench.readalong import timing_errors
from narrator.tools.emulator import RunningEmulator
from narrator.tools.emulator.audio import espeak_wav

from .conftest import TEST_KEY, run_cli
from .test_encode import png
from .test_report import chromium

EPUBCHECK = Path("/usr/share/java/epubcheck.jar")
JAVA = shutil.which("java")

ENGLISH = """# The Lighthouse

It was a dark night. The keeper climbed the stairs, one by one, and lit the lamp.

Ships passed in the fog. Nobody saw them.

# The Storm

The wind rose at dawn! Waves broke on the rocks; the tower shook.

- Ropes were tied.
- Doors were shut.

# The Morning

All was calm again. The keeper slept.
"""

CHINESE = """# 第一章

夜很黑。守灯人爬上楼梯，点亮了灯。船在雾中经过。没有人看见它们。

# 第二章

黎明时起了风！海浪拍打着岩石，灯塔在摇晃。早晨一切又平静了。
"""

NS = {
    "opf": "http://www.idpf.org/2007/opf",
    "smil": "http://www.w3.org/ns/SMIL",
    "x": "http://www.w3.org/1999/xhtml",
    "epub": "http://www.idpf.org/2007/ops",
}


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The English and the Chinese book, made by `narrator narrate -o X.epub`."""
    root = tmp_path_factory.mktemp("readalong")
    cover = png(root / "cover.png")
    made = {}
    for lang, text in (("en", ENGLISH), ("zh", CHINESE)):
        source = root / f"{lang}.md"
        source.write_text(text, encoding="utf-8")
        out = root / f"{lang}.epub"
        code = main(
            ["narrate", str(source), "-o", str(out), "--provider", "espeak", "--quiet",
             "--cache-dir", str(root / "cache"), "--author", "Ann Author", "--cover", str(cover),
             "--max-chars", "80", "--report", str(root / f"{lang}.json")]
        )  # fmt: skip
        assert code == 0
        made[lang] = out
    return made


def unpack(book: Path, folder: Path) -> Path:
    with zipfile.ZipFile(book) as epub:
        epub.extractall(folder)
    return folder / "OEBPS"


def words(text: str) -> str:
    return "".join(text.split())


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_epubcheck_finds_no_error_and_no_warning(books: dict[str, Path], lang: str) -> None:
    if JAVA is None or not EPUBCHECK.exists():
        if os.environ.get("CI"):
            pytest.fail(
                "epubcheck is not installed: .ci/run installs it (apt-get install epubcheck)"
            )
        pytest.skip("epubcheck is not installed (apt-get install epubcheck)")
    # A short-lived JVM: compiling less pays (half the CPU of the default).
    fast = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
    done = subprocess.run(
        [JAVA, *fast, "-jar", str(EPUBCHECK), str(books[lang])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No errors or warnings detected" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize(("lang", "text"), [("en", ENGLISH), ("zh", CHINESE)], ids=["en", "zh"])
def test_every_sentence_is_read_once_in_order_inside_its_audio(
    books: dict[str, Path], lang: str, text: str, tmp_path: Path
) -> None:
    oebps = unpack(books[lang], tmp_path)
    opf = ElementTree.parse(oebps / "package.opf").getroot()
    meta = opf.find("opf:metadata", NS)
    assert meta is not None
    assert meta.findtext("{http://purl.org/dc/elements/1.1/}creator") == "Ann Author"
    assert meta.findtext("{http://purl.org/dc/elements/1.1/}language") == lang
    durations = {m.get("refines"): m.text for m in meta if m.get("property") == "media:duration"}
    spine = [i.get("idref") for i in opf.iterfind("opf:spine/opf:itemref", NS)]
    items = {i.get("id"): i for i in opf.iterfind("opf:manifest/opf:item", NS)}
    assert items["cover"].get("properties") == "cover-image"
    assert len(spine) == text.count("# ")  # one XHTML per chapter
    shown = ""
    total = 0.0
    for idref in spine:
        page = items[idref]
        overlay = items[page.get("media-overlay")]
        xhtml = ElementTree.parse(oebps / page.get("href")).getroot()
        spans = [(s.get("id"), "".join(s.itertext())) for s in xhtml.iter(f"{{{NS['x']}}}span")]
        smil = ElementTree.parse(oebps / overlay.get("href")).getroot()
        pars = list(smil.iter(f"{{{NS['smil']}}}par"))
        # Every sentence exactly once, in the text's order.
        assert [p.find("smil:text", NS).get("src").split("#")[1] for p in pars] == [  # type: ignore[union-attr]
            i for i, _ in spans
        ]
        assert len({i for i, _ in spans}) == len(spans)
        clips = [
            (float(a.get("clipBegin").rstrip("s")), float(a.get("clipEnd").rstrip("s")))  # type: ignore[union-attr]
            for a in smil.iter(f"{{{NS['smil']}}}audio")
        ]
        audio = {a.get("src") for a in smil.iter(f"{{{NS['smil']}}}audio")}
        (href,) = audio
        seconds = probe_seconds(oebps / href)
        assert clips[0][0] == 0
        for (begin, end), (after, _) in zip(clips, [*clips[1:], (None, None)], strict=True):
            assert begin < end
            assert after is None or after == end  # each until the next: no gap, no overlap
        assert clips[-1][1] == pytest.approx(seconds, abs=0.1)  # ends with the audio
        declared = durations[f"#{overlay.get('id')}"]
        assert declared is not None
        h, m, s = declared.split(":")
        assert int(h) * 3600 + int(m) * 60 + float(s) == pytest.approx(clips[-1][1], abs=0.002)
        total += clips[-1][1]
        shown += "".join(t for _, t in spans)
    assert words(shown) == words(re.sub(r"^#+ |^- ", "", text, flags=re.M))
    h, m, s = (durations[None] or "").split(":")
    assert int(h) * 3600 + int(m) * 60 + float(s) == pytest.approx(total, abs=0.01)


def probe_seconds(path: Path) -> float:
    from narrator.book.encode import ffmpeg_exe

    done = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    stamps = re.findall(r"time=(\d+):(\d+):([\d.]+)", done.stderr)
    h, m, s = stamps[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)


PROBE = """<!DOCTYPE html><html><body><pre id="out">waiting</pre>
<iframe id="nav" src="nav.xhtml"></iframe>
<script>
window.addEventListener("load", function () {
  var nav = document.getElementById("nav").contentDocument;
  var links = nav.querySelectorAll("nav a"), seen = [], left = links.length;
  links.forEach(function (a) {
    var frame = document.createElement("iframe");
    frame.onload = function () {
      var page = frame.contentDocument;
      seen.push({href: a.getAttribute("href"), name: a.textContent,
                 spans: page.querySelectorAll("span[id^=s]").length,
                 broken: page.getElementsByTagName("parsererror").length,
                 text: page.body ? page.body.textContent : ""});
      if (--left === 0) document.getElementById("out").textContent = JSON.stringify(seen);
    };
    frame.src = a.href;
    document.body.appendChild(frame);
  });
});
</script></body></html>
"""


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_chromium_renders_every_chapter_the_nav_links_to(
    books: dict[str, Path], lang: str, tmp_path: Path
) -> None:
    oebps = unpack(books[lang], tmp_path / "book")
    probe = oebps / "probe.html"
    probe.write_text(PROBE)
    dom = chromium(
        tmp_path, "--allow-file-access-from-files", "--virtual-time-budget=10000",
        "--dump-dom", probe.as_uri(),
    )  # fmt: skip
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert found is not None, dom[-2000:]
    pages = json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<"))
    # The probe hears of each page as it finishes loading; the nav's order is the hrefs'.
    pages.sort(key=lambda page: page["href"])
    text = ENGLISH if lang == "en" else CHINESE
    titles = re.findall(r"^# (.+)$", text, re.M)
    assert [p["name"] for p in pages] == titles
    assert sorted(p["href"] for p in pages) == sorted(p.name for p in oebps.glob("chapter-*.xhtml"))
    for page, title in zip(pages, titles, strict=True):
        assert page["broken"] == 0 and page["spans"] > 1
        assert words(title) in words(page["text"])


def test_a_book_without_headings_is_one_untitled_section(tmp_path: Path) -> None:
    doc = parse_text("Just text. No headings at all.\n\nA second paragraph here.")
    assert all(c.title is None for c in doc.chapters)
    chunks = split_document(doc, max_chars=30)
    (chapter,) = book_text(doc, chunks, "en")
    assert chapter.title is None and not any(b.heading for b in chapter.blocks)
    assert [s.text.strip() for s in chapter.sentences] == [
        "Just text.", "No headings at all.", "A second paragraph here."
    ]  # fmt: skip
    assert book_text(doc, [], "en") == []
    out = tmp_path / "plain.epub"
    pieces = []
    for chunk in chunks:
        path = tmp_path / f"{chunk.index}.wav"
        path.write_bytes(espeak_wav("Cherry", chunk.text))
        pieces.append(Piece(path, 250))
    book = make_audiobook(doc, chunks, pieces, out, AudiobookOptions(title="Plain"))
    assert book.files == (out,) and book.chapters == ()
    oebps = unpack(out, tmp_path / "x")
    nav = (oebps / "nav.xhtml").read_text()
    assert '<a href="chapter-001.xhtml">Plain</a>' in nav
    assert not (oebps / "chapter-002.xhtml").exists()


def test_hostile_text_stays_text(tmp_path: Path) -> None:
    doc = parse_text(
        '# <b>Bold</b> & "quoted"\n\nA ]]> tag <script>alert(1)</script> here.\x0b Then\ufffe more.'
    )
    chunks = split_document(doc)
    pieces = []
    for chunk in chunks:
        path = tmp_path / f"{chunk.index}.wav"
        path.write_bytes(espeak_wav("Cherry", "word"))
        pieces.append(Piece(path, 250))
    out = tmp_path / "hostile.epub"
    make_audiobook(doc, chunks, pieces, out, AudiobookOptions(title='A "title" <i>'))
    oebps = unpack(out, tmp_path / "x")
    for page in [*oebps.glob("*.xhtml"), *oebps.glob("*.smil"), oebps / "package.opf"]:
        ElementTree.parse(page)  # well-formed, or this raises
    xhtml = ElementTree.parse(oebps / "chapter-001.xhtml").getroot()
    assert xhtml.find(".//x:script", NS) is None and xhtml.find(".//x:b", NS) is None
    assert "<script>alert(1)</script>" in "".join(xhtml.itertext())


def test_sentences_start_at_the_pauses_else_at_their_share() -> None:
    weights = [10, 30, 20]
    # Two pauses, the sentence ends, and a short one (a comma) in between.
    pauses = [Pause(1.0, 1.3), Pause(2.0, 2.1), Pause(3.5, 3.9)]
    assert place(weights, 0.0, 6.0, pauses) == [0.0, 1.3, 3.9]
    # No pause at all: the characters' shares.
    assert place(weights, 0.0, 6.0, []) == pytest.approx([0.0, 1.0, 4.0])
    # One pause fits; the other boundary shares out the time after it.
    assert place(weights, 0.0, 6.0, [Pause(0.8, 1.1)]) == pytest.approx([0.0, 1.1, 1.1 + 4.9 * 0.6])
    assert place([5], 2.0, 3.0, pauses) == [2.0]
    # A hostile chunk: 500 one-letter sentences and a pause every 50 ms. Bounded work,
    # still in order and inside the chunk.
    many = [Pause(0.05 * k, 0.05 * k + 0.03 * (k % 7 + 1)) for k in range(1, 1200)]
    starts = place([1] * 500, 0.0, 65.0, many)
    assert starts == sorted(starts) and 0.0 <= starts[0] and starts[-1] < 65.0


def test_timing_is_within_the_goal_on_speech_with_known_sentence_starts(tmp_path: Path) -> None:
    text = ENGLISH * 3
    errors = timing_errors(text, "en", tmp_path, seed=3)
    summary = errors.summary()
    assert summary["sentences"] >= 15
    assert summary["median_ms"] <= 150 and summary["p95_ms"] <= 400, summary


def test_subtitles_have_a_cue_per_sentence_or_per_chunk(tmp_path: Path) -> None:
    doc = parse_text(ENGLISH)
    chunks = split_document(doc, max_chars=200)
    pieces = []
    for chunk in chunks:
        path = tmp_path / f"{chunk.index}.wav"
        path.write_bytes(espeak_wav("Cherry", chunk.text))
        pieces.append(Piece(path, 250))
    sentences = [s for c in book_text(doc, chunks, "en") for s in c.sentences]
    for cue, count in (("sentence", len(sentences)), ("chunk", len(chunks))):
        out = tmp_path / f"{cue}.mp3"
        make_audiobook(doc, chunks, pieces, out, AudiobookOptions(subtitles="srt", cue=cue))
        srt = out.with_suffix(".srt").read_text()
        stamps = re.findall(r"(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})", srt)
        assert len(stamps) == count
        times = [
            (int(a) * 3600 + int(b) * 60 + int(c) + int(d) / 1000,
             int(e) * 3600 + int(f) * 60 + int(g) + int(h) / 1000)
            for a, b, c, d, e, f, g, h in stamps
        ]  # fmt: skip
        assert all(s <= e for s, e in times)
        assert all(e1 <= s2 for (_, e1), (s2, _) in itertools.pairwise(times))
    assert "1\n00:00:00,000 --> " in srt and "The keeper climbed the stairs" in srt


async def test_an_epub_from_the_cache_sends_nothing(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    source = tmp_path / "story.md"
    source.write_text(ENGLISH)
    common = ["--base-url", emulator.url, "--cache-dir", str(tmp_path / "c"), "--rpm", "6000",
              "--quiet", "--max-chars", "120"]  # fmt: skip
    env = {"AIMLAPI_KEY": TEST_KEY}
    # Narrated once, as an audiobook with a read-along book beside it...
    first = await run_cli(
        "narrate", str(source), "-o", str(tmp_path / "story.m4b"), "--read-along",
        str(tmp_path / "beside.epub"), *common, env=env,
    )  # fmt: skip
    assert first.code == 0, first.stderr
    assert (tmp_path / "story.m4b").stat().st_size and (tmp_path / "beside.epub").stat().st_size
    sent = emulator.stats.requests
    assert sent > 0
    # ...then as a read-along book alone: from the cache.
    again = await run_cli(
        "narrate", str(source), "-o", str(tmp_path / "story.epub"), *common,
        "--report", str(tmp_path / "r.json"), env=env,
    )  # fmt: skip
    assert again.code == 0, again.stderr
    assert emulator.stats.requests == sent
    (doc,) = json.loads((tmp_path / "r.json").read_text())["documents"]
    assert doc["requests"] == 0 and doc["cached_chunks"] == doc["chunks"]
    assert zipfile.ZipFile(tmp_path / "story.epub").read("mimetype") == b"application/epub+zip"


def test_wrong_read_along_options_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"extension \.epub"):
        AudiobookOptions(read_along=tmp_path / "book.mp3")
    with pytest.raises(ConfigError, match="choose sentence or chunk"):
        AudiobookOptions(cue="word")
    (tmp_path / "a.txt").write_text("Hello.")
    (tmp_path / "b.txt").write_text("Bye.")
    code = main(
        ["narrate", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "-o", str(tmp_path / "o"),
         "--read-along", str(tmp_path / "x.epub"), "--provider", "espeak", "--quiet"]
    )  # fmt: skip
    assert code == 2
