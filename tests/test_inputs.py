"""Inputs: plain text, Markdown, HTML, EPUB, URLs and folders become documents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from ebooklib import epub

from narrator.chunks.language import detect_language, resolve_language
from narrator.errors import ConfigError, InputError
from narrator.inputs.documents import Document, load_document, parse_markdown
from narrator.inputs.sources import find_inputs, read_inputs, safe_filename
from narrator.util.netpolicy import NetPolicy

LOOPBACK = NetPolicy.make(hosts=["127.0.0.1"])  # the test site is on loopback, by choice

MARKDOWN = """---
title: front matter is not read out
---
# A Guide to Tea

Read the [brewing manual](https://example.com/manual) first, or see <https://example.com>.
It has **bold** words, *emphasis* and `inline code`.

```python
print("this code block is never read out")
```

## Water

- Use fresh water.
- Heat it to eighty degrees.

<div class="ad">raw HTML is skipped</div>

![a teapot](teapot.png) Pour slowly.

## Time

| Tea | Minutes |
|-----|---------|
| Green | 2 |
"""

ARTICLE_HTML = """<!doctype html>
<html lang="en"><head><title>The Lighthouse Keeper | Coast Weekly</title>
<script>var tracker = "SCRIPT-TEXT-MUST-NOT-APPEAR";</script>
<style>body { color: black }</style></head>
<body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/news">NAVIGATION-LINK</a></li></ul></nav>
<header><div class="menu">Menu Login Register</div></header>
<main><article>
<h1>The Lighthouse Keeper</h1>
<p>For thirty years the keeper climbed the stairs every evening. He lit the lamp, wound
the clockwork and watched the sea until dawn, when the fishing boats came back.</p>
<h2>The storm</h2>
<p>One winter night the wind tore the shutters from their hinges. The keeper held the
lamp steady while waves broke over the rocks below and the whole tower shook.</p>
<p>By morning the ships had all come home, and the village brought him bread and tea.</p>
<h2>Retirement</h2>
<p>When the lamp was automated he moved to a cottage by the harbour. He still walks to
the point every evening to watch the light turn over the water.</p>
</article></main>
<footer>Copyright 2024 Coast Weekly. FOOTER-BOILERPLATE. <a href="/privacy">Privacy</a></footer>
<script>console.log("SCRIPT-TEXT-MUST-NOT-APPEAR");</script>
</body></html>
"""


def make_epub(path: Path) -> None:
    """A small EPUB whose spine order differs from the order the chapters were added."""
    book = epub.EpubBook()
    book.set_identifier("narrator-test-book")
    book.set_title("Tales of the Sea")
    book.set_language("en")
    first = epub.EpubHtml(title="The Harbour", file_name="harbour.xhtml", lang="en")
    first.content = (
        "<html><body><p>The harbour was quiet at dawn.</p>"
        "<p>Gulls circled the masts.</p><script>SCRIPT-IN-EPUB</script></body></html>"
    )
    second = epub.EpubHtml(title="Contents entry", file_name="storm.xhtml", lang="en")
    second.content = (
        "<html><body><h1>The Storm</h1><p>Then the wind rose.</p>"
        "<h2>Aftermath</h2><p>Boats lay on the beach.</p></body></html>"
    )
    book.add_item(second)
    book.add_item(first)
    book.toc = [
        epub.Link("harbour.xhtml", "The Harbour", "harbour"),
        epub.Link("storm.xhtml", "Contents entry", "storm"),
    ]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", first, second]
    epub.write_epub(str(path), book)


def spoken(doc: Document) -> str:
    return doc.text


# --- file kinds -------------------------------------------------------------------------


def test_markdown_headings_become_chapters_and_markup_goes(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(MARKDOWN)
    doc = load_document(path)
    assert doc.title == "A Guide to Tea"
    assert [c.title for c in doc.chapters] == ["A Guide to Tea", "Water", "Time"]
    intro = doc.chapters[0].paragraphs[0]
    assert intro.startswith("Read the brewing manual first")
    assert "bold words, emphasis and inline code" in intro
    text = spoken(doc)
    for gone in ("https://", "print(", "**", "`", "raw HTML", "teapot", "front matter", "---"):
        assert gone not in text, gone
    assert doc.chapters[1].paragraphs == (
        "Use fresh water.",
        "Heat it to eighty degrees.",
        "Pour slowly.",
    )
    assert doc.chapters[2].paragraphs == ("Tea, Minutes", "Green, 2")


def test_markdown_without_a_heading_is_titled_by_its_file_name(tmp_path: Path) -> None:
    path = tmp_path / "my_notes-2024.markdown"
    path.write_text("Just a paragraph.\n\nAnd another.")
    doc = load_document(path)
    assert doc.title == "my notes 2024"
    assert doc.chapters[0].paragraphs == ("Just a paragraph.", "And another.")
    assert parse_markdown("").is_empty


def test_html_keeps_the_article_and_drops_navigation_and_scripts(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(ARTICLE_HTML)
    doc = load_document(path)
    assert doc.title == "The Lighthouse Keeper"
    assert [c.title for c in doc.chapters] == ["The Lighthouse Keeper", "The storm", "Retirement"]
    assert doc.chapters[1].paragraphs[1].startswith("By morning the ships")
    text = spoken(doc)
    for gone in ("SCRIPT-TEXT", "NAVIGATION-LINK", "FOOTER-BOILERPLATE", "Login", "color"):
        assert gone not in text, gone
    # Line wraps inside a paragraph are not paragraph breaks.
    assert "wound the clockwork" in doc.chapters[0].paragraphs[0]


def test_a_page_without_an_article_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.htm"
    path.write_text("<html><body><nav><a href='/'>Home</a></nav><script>x()</script></body></html>")
    with pytest.raises(InputError, match="no article text"):
        load_document(path)


def test_epub_chapters_follow_the_spine_with_their_titles(tmp_path: Path) -> None:
    path = tmp_path / "tales.epub"
    make_epub(path)
    doc = load_document(path)
    assert doc.title == "Tales of the Sea"
    assert [c.title for c in doc.chapters] == ["The Harbour", "The Storm", "Aftermath"]
    assert doc.chapters[0].paragraphs == (
        "The harbour was quiet at dawn.",
        "Gulls circled the masts.",
    )
    assert doc.chapters[2].paragraphs == ("Boats lay on the beach.",)
    assert "SCRIPT-IN-EPUB" not in spoken(doc)


def test_a_broken_epub_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.epub"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="not a readable EPUB"):
        load_document(path)


# --- languages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("The cat sat on the mat, and it was not amused by the dog.", "en"),
        ("Der Hund läuft über die Straße und ist nicht müde, aber sie ist es.", "de"),
        ("Le chat est sur la table et il dort dans la maison pour la nuit.", "fr"),
        ("El perro corre por la calle y no está cansado, pero los gatos sí.", "es"),
        ("Il gatto è sulla tavola e non dorme per niente, anche se è tardi.", "it"),
        ("O cão corre pela rua e não está cansado, mas é feliz com os amigos.", "pt"),
        ("Собака бежит по улице и не устала.", "ru"),
        ("今天天气很好。我们去公园散步吧。", "zh"),
        ("今日はいい天気ですね。散歩に行きましょう。", "ja"),
        ("안녕하세요. 오늘 날씨가 좋네요.", "ko"),
        ("12345 — !!!", "en"),
    ],
)
def test_language_is_told_from_the_text(text: str, lang: str) -> None:
    assert detect_language(text) == lang


def test_a_forced_language_wins_over_detection() -> None:
    doc = Document("t", ())
    assert resolve_language(doc, "de") == "de"
    assert resolve_language(Document("t", (), lang="ja"), "auto") == "ja"


# --- finding and fetching ---------------------------------------------------------------


def test_folders_are_searched_recursively_with_globs(tmp_path: Path) -> None:
    for name in ("a.txt", "b.md", "c.html", "d.epub", "e.pdf", "sub/f.markdown", "sub/g.htm"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "h.txt").write_text("x")
    (tmp_path / ".dot.txt").write_text("x")

    def found(**globs: list[str]) -> list[str]:
        items, many = find_inputs([str(tmp_path)], **globs)  # type: ignore[arg-type]
        assert many
        return [str(i.relative) for i in items]

    assert found() == ["a", "b", "c", "d", "sub/f", "sub/g"]
    assert found(include=["*.md", "*.markdown"]) == ["b", "sub/f"]
    assert found(exclude=["sub/*", "*.epub"]) == ["a", "b", "c"]
    with pytest.raises(ConfigError, match="no such file"):
        find_inputs([str(tmp_path / "missing")])


def test_safe_filenames() -> None:
    assert safe_filename('What? A "Title": <yes>/no') == "What A Title yes no"
    assert safe_filename("  ...  ") == "untitled"
    assert safe_filename("CON") == "_CON"
    assert safe_filename("长" * 200).encode().__len__() <= 120


@pytest.fixture
async def site() -> AsyncIterator[str]:
    """A small web site on loopback: an article, a 404, a page with no article, a huge page."""

    async def article(request: web.Request) -> web.Response:
        return web.Response(text=ARTICLE_HTML, content_type="text/html")

    async def navigation_only(request: web.Request) -> web.Response:
        return web.Response(
            text="<html><body><nav><a href='/'>Home</a></nav></body></html>",
            content_type="text/html",
        )

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        for _ in range(64):  # no Content-Length: the cap must hold while streaming
            await response.write(b"<p>" + b"x" * 16_384 + b"</p>")
        await response.write_eof()
        return response

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG....", content_type="image/png")

    app = web.Application()
    app.router.add_get("/article", article)
    app.router.add_get("/nav", navigation_only)
    app.router.add_get("/huge", huge)
    app.router.add_get("/image.png", image)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_urls_are_fetched_and_each_failure_stays_its_own(site: str, tmp_path: Path) -> None:
    text = tmp_path / "note.txt"
    text.write_text("A plain note.")
    urls = [
        f"{site}/article",
        f"{site}/missing",
        f"{site}/nav",
        f"{site}/huge",
        f"{site}/image.png",
    ]
    items, many = find_inputs([*urls, str(text), "-"])
    assert many and [i.relative for i in items][:5] == [None] * 5
    results = await read_inputs(
        items, stdin=b"From standard input.", max_bytes=200_000, policy=LOOPBACK
    )
    article, missing, nav, huge, image, note, stdin = results
    assert isinstance(article, Document)
    assert article.title == "The Lighthouse Keeper" and article.source == f"{site}/article"
    assert len(article.chapters) == 3
    assert isinstance(missing, InputError) and "HTTP 404" in str(missing)
    assert isinstance(nav, InputError) and "no article text" in str(nav)
    assert isinstance(huge, InputError) and "larger than" in str(huge)
    assert isinstance(image, InputError) and "image/png" in str(image)
    assert isinstance(note, Document) and note.chapters[0].paragraphs == ("A plain note.",)
    assert isinstance(stdin, Document) and stdin.text == "From standard input."


async def test_an_unreachable_url_is_an_input_error() -> None:
    # Port 9 (discard) on loopback is closed on any test machine: the connection is refused.
    (result,) = await read_inputs(
        find_inputs(["http://127.0.0.1:9/x"])[0], timeout=5, policy=LOOPBACK
    )
    assert isinstance(result, InputError) and "127.0.0.1:9" in str(result)


# --- nothing left out without a word -------------------------------------------------------


def _break_chapter(path: Path, name: str) -> None:
    """Replace one chapter of an EPUB with bytes no HTML parser makes a tree of."""
    import zipfile

    with zipfile.ZipFile(path) as old:
        items = [(info, old.read(info)) for info in old.infolist()]
    with zipfile.ZipFile(path, "w") as new:
        for info, data in items:
            new.writestr(
                info, b"<!-- nothing but a comment -->" if info.filename.endswith(name) else data
            )


def test_what_was_left_out_is_on_the_report_and_in_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from narrator.chunks import split
    from narrator.cli import main

    book = tmp_path / "tales.epub"
    make_epub(book)
    _break_chapter(book, "storm.xhtml")
    doc = load_document(book)
    assert [c.title for c in doc.chapters] == ["The Harbour"]
    assert len(doc.warnings) == 1 and "storm.xhtml could not be parsed" in doc.warnings[0]

    class Broken:  # pysbd failing, as it may on text it was never tried on
        def processor(self, text: str) -> object:
            raise IndexError("list index out of range")

    monkeypatch.setattr(split, "segmenter_for", lambda lang: Broken())
    out, report = tmp_path / "tales.wav", tmp_path / "r.json"
    code = main([
        "narrate", str(book), "-o", str(out), "--provider", "espeak", "--max-chars", "30",
        "--cache-dir", str(tmp_path / "c"), "--report", str(report), "--quiet",
    ])  # fmt: skip
    assert code == 0 and out.exists()
    warnings = json.loads(report.read_text())["documents"][0]["warnings"]
    assert len(warnings) == 2, warnings
    assert "storm.xhtml could not be parsed" in warnings[0]
    assert "sentence splitter failed" in warnings[1] and "IndexError" in warnings[1]
    err = capsys.readouterr().err
    assert err.count(f"WARNING: {book}: ") == 2
