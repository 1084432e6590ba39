"""Documents read as a listener expects: realistic shapes (a news page with its cookie
banner and share bar, an EPUB with cover, copyright page, contents and footnotes, READMEs
in Markdown and reST, a letter with addresses, a Chinese article), all written for these
tests, and assertions on what would be spoken."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ebooklib import epub

from narrator.inputs.documents import Document, load_document

from .conftest import run_cli

HERE = Path(__file__).parent / "listening"
# What a voice must never be given: an address, markup, the page around the article.
ADDRESS = re.compile(r"https?://|www\.|\S@\S|\.(?:pdf|html?|svg)\b|[?&]\w+=", re.IGNORECASE)
MARKUP = re.compile(r"[#*`|<>\[\]]|^\s*[-=~]{3,}|\.\. |::|!\[|\]\(")


def spoken(doc: Document) -> list[str]:
    """Every heading and paragraph, in reading order."""
    lines = []
    for chapter in doc.chapters:
        if chapter.title:
            lines.append(chapter.title)
        lines += [" ".join(p.split()) for p in chapter.paragraphs]
    return lines


def titles(doc: Document) -> list[str | None]:
    return [chapter.title for chapter in doc.chapters]


def nothing_unspeakable(lines: list[str]) -> None:
    for line in lines:
        assert not ADDRESS.search(line), line
        assert not MARKUP.search(line), line


def make_epub(path: Path) -> None:
    """A novel's shape: cover, title page, copyright page, an HTML contents page, two
    chapters with footnote marks (one note in place, one at the back) and endnotes."""
    book = epub.EpubBook()
    book.set_identifier("lamplighter-2026")
    book.set_title("The Lamplighter's Year")
    book.set_language("en")
    book.add_author("R. Okafor")
    ops = 'xmlns:epub="http://www.idpf.org/2007/ops"'
    pages = {
        "cover": '<html><body><div class="cover"><img src="cover.jpg" alt="cover"/></div>'
        "</body></html>",
        "title": f'<html {ops}><body epub:type="frontmatter titlepage">'
        "<h1>The Lamplighter's Year</h1>"
        '<p class="author">R. Okafor</p></body></html>',
        "copyright": f'<html {ops}><body epub:type="frontmatter copyright-page">'
        "<p>Copyright © 2026 R. Okafor. All rights reserved.</p><p>No part of this book may be "
        "reproduced without written permission.</p><p>ISBN 978-0-00-000000-0</p></body></html>",
        "contents": '<html><body><h1>Contents</h1><ol><li><a href="ch1.xhtml">Winter</a></li>'
        '<li><a href="ch2.xhtml">Spring</a></li><li><a href="notes.xhtml">Notes</a></li></ol>'
        "</body></html>",
        "ch1": f"<html {ops}><body><h1>Winter</h1><p>The lamps on Quay Street were lit at four, "
        'before the light had fully gone.<a epub:type="noteref" href="notes.xhtml#n1" id="r1">'
        "<sup>1</sup></a> Tomas carried the long pole over his shoulder like an oar.</p>"
        "<p>Nobody on the street thanked him, and he preferred it that way.</p></body></html>",
        "ch2": f"<html {ops}><body><h1>Spring</h1><p>In April the council voted to replace the "
        'gas lamps with electric ones.<sup><a href="#fn2" id="r2">2</a></sup> Tomas read the '
        'notice twice and folded it into his coat.</p><aside epub:type="footnote" id="fn2">'
        "<p>The vote was eleven to four.</p></aside><p>He lit the lamps that evening as if "
        "nothing had changed.</p></body></html>",
        "notes": f'<html {ops}><body epub:type="backmatter"><h1>Notes</h1><aside '
        'epub:type="endnote" id="n1"><p><a href="ch1.xhtml#r1">1</a> Sunset in that harbour '
        "town falls before four in December.</p></aside></body></html>",
    }
    items = {}
    for name, content in pages.items():
        items[name] = epub.EpubHtml(title=name.title(), file_name=f"{name}.xhtml", lang="en")
        items[name].content = content
        book.add_item(items[name])
    book.toc = [
        epub.Link("ch1.xhtml", "Winter", "ch1"),
        epub.Link("ch2.xhtml", "Spring", "ch2"),
        epub.Link("notes.xhtml", "Notes", "notes"),
    ]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = [items["cover"], items["title"], items["copyright"], items["contents"], "nav",
                  items["ch1"], items["ch2"], items["notes"]]  # fmt: skip
    epub.write_epub(str(path), book)


def test_a_news_page_is_its_article_without_the_page_around_it() -> None:
    doc = load_document(HERE / "news.html")
    lines = spoken(doc)
    text = " ".join(lines)
    for chrome in ("cookie", "Accept all", "Manage preferences", "Share this", "WhatsApp",
                   "Sign up", "Subscribe", "Related stories", "Harbour dues", "Privacy",
                   "All rights reserved", "Search the Gazette", "Sport"):  # fmt: skip
        assert chrome not in text, chrome
    assert titles(doc) == [
        "Night Ferries Return to the Northern Isles",
        "What changes for passengers",
        "A longer-term plan",
    ]
    for sentence in ("will sail again from next Monday", "failed its safety inspection",
                     "Cabins can be booked from Friday", "before dawn",
                     "work on its car deck continues"):  # fmt: skip
        assert sentence in text, sentence
    nothing_unspeakable(lines)


def test_an_epub_is_read_from_its_title_page_without_cover_copyright_contents_or_marks(
    tmp_path: Path,
) -> None:
    make_epub(tmp_path / "lamp.epub")
    doc = load_document(tmp_path / "lamp.epub")
    lines = spoken(doc)
    text = " ".join(lines)
    # the title page is no chapter: it opens the book as an announcement
    assert titles(doc) == [None, "Winter", "Spring", "Notes"]
    assert doc.chapters[0].paragraphs == ("The Lamplighter's Year. By R. Okafor.",)
    for legal in ("Copyright", "rights reserved", "ISBN", "reproduced", "Contents"):
        assert legal not in text, legal
    # footnote marks are not read as numbers glued to the sentence
    assert "gone. Tomas carried" in text and "electric ones. Tomas read" in text
    assert not re.search(r"\w[12]\b|\b[12] Sunset", text)
    for sentence in ("preferred it that way", "The vote was eleven to four",
                     "as if nothing had changed", "Sunset in that harbour town"):  # fmt: skip
        assert sentence in text, sentence
    nothing_unspeakable(lines)


def test_a_markdown_readme_loses_badges_code_and_link_targets_but_not_its_words() -> None:
    doc = load_document(HERE / "README.md")
    lines = spoken(doc)
    text = " ".join(lines)
    assert titles(doc) == ["tidewatch", "Installation", "Supported harbours", "Getting help"]
    assert "Build" not in text and "PyPI" not in lines[1] and "License" not in text
    assert "pip install" not in text  # the code block
    assert "Northport, NP-2, 2019" in text  # a table row, read as a row
    assert "gauge readings and warns you" in text  # the footnote mark is gone
    assert "The gauges are read every six minutes." in text  # the note itself is not
    assert "github.com" in text and "help at tidewatch.example.org" in text
    nothing_unspeakable(lines)


def test_a_rest_readme_gets_its_headings_and_loses_its_directives() -> None:
    doc = load_document(HERE / "README.rst")
    lines = spoken(doc)
    text = " ".join(lines)
    assert titles(doc) == ["tidewatch", "Installation", "Usage", "Configuration"]
    assert "image" not in text and ":target:" not in text and ":alt:" not in text
    assert "pip install" not in text  # the literal block after "::"
    assert "Install it with pip:" in text
    assert "Python 3.10 or later is needed." in text  # a note's words stay
    assert "See the documentation for more, and configuration." in text
    nothing_unspeakable(lines)


def test_bare_addresses_in_a_letter_are_said_as_people_say_them() -> None:
    doc = load_document(HERE / "letter.txt")
    text = " ".join(spoken(doc))
    assert (
        "The agenda is online at rowingclub.example.org and a map is at maps.example.com." in text
    )
    assert "write to the secretary at secretary at rowingclub.example.org before the 10th" in text
    nothing_unspeakable(spoken(doc))


def test_a_chinese_article_keeps_every_sentence_and_loses_its_addresses() -> None:
    doc = load_document(HERE / "zh.txt")
    lines = spoken(doc)
    text = "".join(lines)
    assert titles(doc) == ["城市里的小书店", "新的开始"]
    for sentence in ("有一家开了二十年的书店", "再把新到的书摆上桌子", "也是为了和店主聊几句",
                     "预约活动", "周末常常坐满了孩子"):  # fmt: skip
        assert sentence in text, sentence
    assert "书店的网站是xiaoshudian.example.cn，" in text
    nothing_unspeakable(lines)


async def test_the_real_process_speaks_what_the_listener_expects(tmp_path: Path) -> None:
    """End to end: the subtitles hold exactly what the voice was given."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("letter.txt", "README.rst", "README.md"):
        (docs / name.replace("README.rst", "tidewatch.rst")).write_bytes((HERE / name).read_bytes())
    make_epub(docs / "lamp.epub")
    result = await run_cli(
        "narrate", *sorted(map(str, docs.iterdir())), "-o", str(tmp_path / "out"),
        "--format", "mp3",
        "--subtitles", "srt", "--provider", "espeak", "--rpm", "100000",
        "--cache-dir", str(tmp_path / "c"), "--quiet",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    cues = []
    for srt in sorted((tmp_path / "out").glob("*.srt")):
        blocks = srt.read_text().strip().split("\n\n")
        cues += [" ".join(block.split("\n")[2:]) for block in blocks]
    assert len(list((tmp_path / "out").glob("*.srt"))) == 4
    nothing_unspeakable(cues)
    heard = " ".join(cues)
    assert "rowingclub.example.org" in heard and "Tomas carried the long pole" in heard


@pytest.mark.parametrize(
    ("text", "heard"),
    [
        ("See https://www.example.org/a/b?c=1&d=2. Then go.", "See example.org. Then go."),
        ("(see www.bbc.co.uk/news)", "(see bbc.co.uk)"),
        ("Tea https://en.wikipedia.org/wiki/Tea_(drink), hot", "Tea en.wikipedia.org, hot"),
        ("Visit <https://docs.python.org/3/>!", "Visit docs.python.org!"),
        ("port http://127.0.0.1:8080/v1 ok", "port 127.0.0.1 ok"),
        ("Mail anna.k@example.co.uk today.", "Mail anna.k at example.co.uk today."),
        ("an address <mailto:bob@x.org>", "an address bob at x.org"),
        ("详见https://www.example.cn/news/1。谢谢", "详见example.cn。谢谢"),
        ("写信到hello@example.cn，谢谢", "写信到hello at example.cn，谢谢"),
        ("A note[^1] here.", "A note here."),
        # what only looks like an address is left alone
        ("Version 3.11.2 of file.txt, e.g. this, costs $4.50.", None),
        ("He wrote @home and 10:30 am.", None),
    ],
)
def test_what_an_address_sounds_like(text: str, heard: str | None) -> None:
    from narrator.inputs.speakable import speakable

    assert speakable(text) == (heard if heard is not None else text)


def test_prose_that_starts_like_rest_is_kept_when_the_text_is_not_rest() -> None:
    from narrator.inputs.documents import parse_text

    doc = parse_text(".. and then she left.\n\nThe door closed.\n\nEnd of story::")
    assert spoken(doc) == [".. and then she left.", "The door closed.", "End of story:"]
