"""A book's front matter is not a chapter (issue 27, item 9): an EPUB's title page,
found by its EPUB 2 guide, its EPUB 3 landmarks or type, or its shape, opens the book
as "Title. By Author."; a news page's dateline is read with its headline."""

from __future__ import annotations

from pathlib import Path

import pytest

import narrator

CHAPTERS = {
    "ch1": "<h2>I. The Fog</h2><p>The fog came in before the boats did, and the keeper "
    "climbed the stair with his lantern. Nobody came.</p>",
    "ch2": "<h2>II. The Storm</h2><p>By midnight the wind had turned, and the light burned "
    "on through the rain until the boats were home.</p>",
}
# A title page the shape alone would not take for one: its lines do not name the book as
# its package does (a subtitle, the author as "M. Hale"), and it is in the contents.
TITLE_PAGE = (
    "<h1>The Harbour Light: A Tale of the Northern Coast</h1><p>by M. Hale</p>"
    "<p>With eight illustrations</p><p>London: Hollis &amp; Sons</p>"
)


def _book(path: Path, how: str, *, title_page: str = TITLE_PAGE, in_contents: bool = True) -> Path:
    """An EPUB as publishers make them: a cover image page, a title page, the contents,
    then chapters; ``how`` names the title page: ``guide`` (EPUB 2), ``landmarks``
    (EPUB 3), ``type`` (``epub:type`` on the page) or ``none``."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier(f"harbour-{how}")
    book.set_title("The Harbour Light")
    book.set_language("en")
    book.add_author("Margaret Hale")
    section = '<section epub:type="titlepage">' if how == "type" else "<section>"
    pages = {"title": f"{section}{title_page}</section>", **CHAPTERS}
    items = {}
    for name, body in pages.items():
        items[name] = epub.EpubHtml(title=name, file_name=f"text/{name}.xhtml", lang="en")
        items[name].content = f"<html><body>{body}</body></html>"
        book.add_item(items[name])
    links = [epub.Link("text/title.xhtml", "Title Page", "title")] if in_contents else []
    book.toc = [
        *links,
        epub.Link("text/ch1.xhtml", "I. The Fog", "ch1"),
        epub.Link("text/ch2.xhtml", "II. The Storm", "ch2"),
    ]
    if how in ("guide", "landmarks"):
        book.guide = [
            {"href": "text/title.xhtml", "title": "Title Page", "type": "title-page"},
            {"href": "text/ch1.xhtml", "title": "Begin Reading", "type": "text"},
        ]
        if how == "landmarks":  # ebooklib writes the guide's title-page as "title-page"
            book.guide[0]["type"] = "titlepage"
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", items["title"], items["ch1"], items["ch2"]]
    # EPUB 2 readers look at the guide, EPUB 3 at the landmarks: each book has one only.
    options = {"epub3_landmark": how == "landmarks", "epub2_guide": how == "guide"}
    epub.write_epub(str(path), book, options)
    return path


@pytest.mark.parametrize("how", ["guide", "landmarks", "type"])
def test_a_title_page_named_so_opens_the_book_as_an_announcement(tmp_path: Path, how: str) -> None:
    document = narrator.load_document(_book(tmp_path / "harbour.epub", how))
    assert [c.title for c in document.chapters] == [None, "I. The Fog", "II. The Storm"]
    assert document.chapters[0].paragraphs == ("The Harbour Light. By Margaret Hale.",)
    assert "illustrations" not in document.text and "Hollis" not in document.text


def test_a_title_page_nobody_named_is_known_by_its_shape(tmp_path: Path) -> None:
    page = "<p>THE HARBOUR LIGHT</p><p>BY MARGARET HALE</p><p>NEW YORK: HOLLIS, 1916</p>"
    document = narrator.load_document(
        _book(tmp_path / "harbour.epub", "none", title_page=page, in_contents=False)
    )
    assert [c.title for c in document.chapters] == [None, "I. The Fog", "II. The Storm"]
    assert document.chapters[0].paragraphs == ("The Harbour Light. By Margaret Hale.",)


def test_a_first_page_of_prose_is_read_even_when_it_names_the_book(tmp_path: Path) -> None:
    page = (
        "<h1>The Harbour Light</h1><p>The keeper had lived there for forty years.</p>"
        "<p>He knew every rock.</p>"
    )
    document = narrator.load_document(
        _book(tmp_path / "harbour.epub", "none", title_page=page, in_contents=False)
    )
    assert document.chapters[0].title == "The Harbour Light"
    assert "forty years" in document.text and "every rock" in document.text


ARTICLE = """<h1>Night Ferries Return to the Isles</h1>
<p>The overnight ferry will sail again from next Monday, the operator said on Tuesday, after the
vessel passed its inspection at the second attempt. Passengers will be contacted by email.</p>
<p>The service was suspended in August when the ship failed its safety inspection, leaving
islanders with a single daytime crossing for most of the autumn season.</p>
<h2>What changes for passengers</h2>
<p>Cabins can be booked from Friday. The first sailing leaves before dawn, and the car deck
opens an hour before departure for vehicles that were booked in advance.</p>"""


@pytest.mark.parametrize(
    ("name", "page"),
    [
        ("news.html", f"<html><body><article><h4>October 22, 2019 report</h4>{ARTICLE}"
                      "</article></body></html>"),
        ("news.md", "### October 22, 2019 report\n\n# Night Ferries Return to the Isles\n\n"
                    "The overnight ferry will sail again from next Monday.\n\n"
                    "## What changes for passengers\n\nCabins can be booked from Friday.\n"),
        ("plain.md", "October 22, 2019 report\n\n# Night Ferries Return to the Isles\n\n"
                     "The overnight ferry will sail again from next Monday.\n\n"
                     "## What changes for passengers\n\nCabins can be booked from Friday.\n"),
    ],
)  # fmt: skip
def test_a_dateline_set_as_a_heading_is_read_after_the_headline(
    tmp_path: Path, name: str, page: str
) -> None:
    (tmp_path / name).write_text(page)
    document = narrator.load_document(tmp_path / name)
    first, second = document.chapters
    assert document.title == first.title == "Night Ferries Return to the Isles"
    assert first.paragraphs[0] == "October 22, 2019 report"
    assert second.title == "What changes for passengers"


def test_a_part_title_over_its_first_chapter_still_joins_it(tmp_path: Path) -> None:
    (tmp_path / "book.md").write_text("# Part One\n\n## The Fog\n\nThe fog came in.\n")
    (chapter,) = narrator.load_document(tmp_path / "book.md").chapters
    assert chapter.title == "Part One. The Fog" and chapter.paragraphs == ("The fog came in.",)
