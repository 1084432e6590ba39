"""The morning-after page, read as a person would: a real run rendered and opened in a
real headless Chromium, and pages for 1 and 100 documents.

The end-to-end run plays a hostile service (429s, 5xx, bad audio billed as good) for
three documents, one of which the service refuses; the page is then checked through the
DOM Chromium built (``--dump-dom``): every document, chapter and flagged segment is
there, and clicking each seek link (in the browser, through the page's own script) puts
its player at the time the run reported. A screenshot is kept with the test's files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import lxml.html
import pytest

from narrator.book.encode import ChapterMark
from narrator.report.writer import RunContext, read_report, render_html, write_report
from narrator.run.pipeline import DocumentReport, Flag, RunReport
from narrator.run.status import Status
from narrator.synth.timeline import Timeline

from .conftest import TEST_KEY, run_cli
from .test_resilience import base_args, emulate

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--mute-audio", "--autoplay-policy=no-user-gesture-required",
)  # fmt: skip


def chromium(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium with a fresh profile; its stdout."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def chapters(title: str, count: int) -> str:
    """A document of ``count`` short chapters: one chunk each at --max-chars 700."""
    return f"# {title}\n\n" + "\n\n".join(
        f"## {title} part {n}\n\n"
        + " ".join(f"Sentence {i} of part {n} is read aloud, then the next." for i in range(5))
        for n in range(1, count + 1)
    )


PROBE = """<script>
// Click every seek link as a reader would; note where its player landed.
document.querySelectorAll("a[data-seek]").forEach(function (link) {
  link.click();
  var player = document.getElementById(link.dataset.player);
  link.setAttribute("data-landed", player ? String(player.currentTime) : "no player");
});
</script>
</body>"""


async def test_a_real_run_in_a_real_browser(tmp_path: Path) -> None:
    books = tmp_path / "in"
    books.mkdir()
    (books / "atlas.md").write_text(chapters("Atlas", 8))
    (books / "brook.md").write_text(chapters("Brook", 6))
    refused = "word " * 110  # 550 characters: this service refuses over 500
    (books / "cinder.md").write_text(
        f"# Cinder\n\n## Fine\n\nA fine start.\n\n## Long\n\n{refused}."
    )
    emulator = await emulate(
        max_characters=500, rpm=300, fail_rate=0.15, bad_audio_rate=0.5,
        bad_audio_kinds=("silent", "runaway"), seed=5,
    )  # fmt: skip
    out, page, data = tmp_path / "out", tmp_path / "reports" / "run.html", tmp_path / "run.json"
    rerun = tmp_path / "reports" / "rerun.html"
    args = [
        *base_args(emulator.url, tmp_path / "cache"), "--max-chars", "700",
        "--concurrency", "3", "--qa-retries", "0",
    ]  # fmt: skip
    try:
        result = await run_cli("narrate", str(books), "-o", str(out), "--report", str(data), *args)
        stats = emulator.stats
        # The same command again: the books are up to date, Cinder still fails; its page
        # straight from narrate --report FILE.html.
        again = await run_cli("narrate", str(books), "-o", str(out), "--report", str(rerun), *args)
    finally:
        await emulator.close()
    assert result.code == 1, result.stderr  # one document failed
    assert "Traceback" not in result.stderr
    assert stats.statuses.get(429) and stats.bad_billed, "the service played no faults"
    assert again.code == 1, again.stderr
    rendered = await run_cli("report", str(data), "-o", str(page))
    assert rendered.code == 0, rendered.stderr

    # What the run reported, to hold the page to.
    run, _ = read_report(data)
    first = lxml.html.fromstring(page.read_text())

    # The browser: the page's own script seeks; a probe clicks every link and notes where
    # its player landed. The probe page sits beside the report, so the relative links hold.
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE))
    dom = lxml.html.fromstring(chromium(tmp_path, "--dump-dom", probe.as_uri()))
    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1100,2200", page.as_uri())
    assert shot.stat().st_size > 10_000
    if os.environ.get("NARRATOR_ARTIFACTS"):
        shutil.copy(shot, Path(os.environ["NARRATOR_ARTIFACTS"]) / "report.png")

    articles = dom.xpath(".//article[contains(@class, 'document')]")
    assert [a.xpath(".//h3")[0].text_content() for a in articles] == ["Atlas", "Brook", "Cinder"]
    statuses = [a.xpath(".//span[contains(@class, 'status')]")[0].text_content() for a in articles]
    assert statuses == ["done", "done", "failed"]
    flagged_total = 0
    for article, doc in zip(articles, run.documents, strict=True):
        seeks = article.xpath(".//ol[@class='chapters']//a[@data-seek]")
        if doc.status is Status.DONE:
            # Every chapter, in order, seeking its player to the chapter's start.
            assert len(doc.chapters) > 1
            assert [a.text_content().split(" ", 1)[1] for a in seeks] == [
                c.title for c in doc.chapters
            ]
            landed = [float(a.get("data-landed")) for a in seeks]
            assert landed == pytest.approx([c.start for c in doc.chapters], abs=0.001)
            assert landed[-1] > 0
            (player,) = article.xpath(".//audio")
            # The audio is found from the page's folder: reports/ -> ../out/atlas.wav.
            assert (page.parent / player.get("src")).resolve() == Path(doc.output).resolve()
        # Every flagged segment: its text, its reason, and a play link to its start.
        rows = article.xpath(".//table[@class='flagged']//tr[@class='flag']")
        assert len(rows) == len(doc.flagged)
        for row, flag in zip(rows, doc.flagged, strict=True):
            assert row.xpath(".//td[@class='text']")[0].text_content() == flag.text
            assert flag.reason in row.text_content() and flag.kind in row.text_content()
            plays = row.xpath(".//a[contains(@class, 'play')]")
            if doc.status is not Status.DONE:  # no book, so nothing to play
                assert not plays and flag.start is None
                continue
            assert flag.start is not None and len(plays) == 1
            assert float(plays[0].get("data-landed")) == pytest.approx(flag.start, abs=0.001)
        flagged_total += len(rows)
    assert flagged_total > 0, "no segment was flagged: the page's flagged list is untested"
    # The failed document: its error and the command that resumes it.
    failed = articles[2]
    assert "500" in failed.xpath(".//div[@class='errors']//li")[0].text_content()
    command = failed.xpath(".//code[@class='command']")[0].text_content()
    assert command.startswith("narrator narrate ") and str(books) in command
    # The key given on the command line is named, never written down.
    assert '--api-key "$AIMLAPI_KEY"' in command
    for written in (page, data, rerun):
        assert TEST_KEY not in written.read_text()
    assert not failed.xpath(".//audio")
    # The timeline's small multiples show the run's 429s and retries.
    captions = [f.text_content() for f in dom.xpath(".//figure[@class='chart']/figcaption")]
    assert any(c.startswith("Answered 429") for c in captions)
    throttled = sum(int(x) for x in run.timeline.throttled) if run.timeline else 0
    assert throttled == run.throttled > 0
    assert len(dom.xpath(".//figure[@class='chart']//rect")) > 0
    # Self-contained: no address the page would fetch besides its audio files.
    for element in first.iter():
        for name in ("src", "href"):
            value = element.get(name) or ""
            assert "://" not in value, value
    # The rerun's page, written by narrate itself: the books up to date, their flagged
    # segments still listed (a rerun knows no start times, so no play link), Cinder failed.
    later = lxml.html.fromstring(rerun.read_text())
    docs = later.xpath(".//article[contains(@class, 'document')]")
    assert [d.xpath(".//span[contains(@class, 'status')]")[0].text_content() for d in docs] == [
        "up-to-date",
        "up-to-date",
        "failed",
    ]
    assert len(later.xpath(".//tr[@class='flag']")) == flagged_total
    assert not later.xpath(".//tr[@class='flag']//a")


def synthetic_run(documents: int) -> RunReport:
    """A big run: ``documents`` books of 12 chapters, every fifth failed, a few flags."""
    timeline = Timeline()
    for n in range(documents * 40):
        timeline.started(n * 0.9, in_flight=1 + n % 4, rpm=60.0 if n % 500 < 400 else 42.0)
        if n % 97 == 0:
            timeline.throttled(n * 0.9, cut=n % 500 == 400)
            timeline.retried(n * 0.9 + 1)
    docs = []
    for i in range(documents):
        failed = i % 5 == 4
        flags = tuple(
            Flag(
                chunk=3 + f,
                text="A sentence the gate did not like. " * 3,
                kind="runaway",
                reason="3.2 s of silence, then sound",
                measured=11.0,
                expected=6.5,
                attempts=3,
                start=35.25 + 300 * f,
            )
            for f in range(i % 3)
        )
        docs.append(
            DocumentReport(
                input=f"in/book-{i:03d}.md",
                output=f"out/book-{i:03d}.m4b",
                title=f'Book {i} <of> & the "sea"',
                status=Status.FAILED if failed else Status.DONE,
                chunks=40,
                billing_characters=21_000,
                audio_seconds=0.0 if failed else 1400.0,
                requests=40,
                retries=1,
                cached_chunks=0,
                errors=("chunk 7: gave up after 5 attempts: HTTP 503",) if failed else (),
                chapters=()
                if failed
                else tuple(ChapterMark(f"Chapter {c}", c * 116.5) for c in range(12)),
                files=() if failed else (f"out/book-{i:03d}.m4b",),
                flagged=() if failed else flags,
            )
        )
    return RunReport(
        documents=tuple(docs), requests=documents * 40, retries=documents // 2, throttled=9,
        resynthesized=0, seconds=documents * 36.0, timeline=timeline.series(),
    )  # fmt: skip


@pytest.mark.parametrize("documents", [1, 100])
def test_pages_for_one_and_a_hundred_documents(tmp_path: Path, documents: int) -> None:
    run = synthetic_run(documents)
    context = RunContext(
        provider="aimlapi", rpm=60.0, concurrency=4, command="narrator narrate in -o out"
    )
    page = render_html(run, context, folder=tmp_path / "out", base=tmp_path)
    size = len(page.encode())
    # Reasonable for a 100-document run: a few kilobytes a book, the charts bounded.
    assert size < 5_000 * documents + 40_000, size
    dom = lxml.html.fromstring(page)
    articles = dom.xpath(".//article[contains(@class, 'document')]")
    assert len(articles) == documents
    assert len(dom.xpath(".//table[@class='index']/tbody/tr")) == documents
    first = articles[0]
    # Titles are escaped, never markup.
    assert first.xpath(".//h3")[0].text_content() == 'Book 0 <of> & the "sea"'
    links = first.xpath(".//ol[@class='chapters']//a")
    assert [float(a.get("data-seek")) for a in links] == [c * 116.5 for c in range(12)]
    assert links[3].get("href") == "book-000.m4b#t=349.500"  # relative to the page's folder
    if documents == 100:
        # Chromium reads the big page whole: every book is in the DOM it builds.
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "run.html").write_text(page)
        built = lxml.html.fromstring(
            chromium(tmp_path, "--dump-dom", (tmp_path / "out" / "run.html").as_uri())
        )
        assert len(built.xpath(".//article[contains(@class, 'document')]")) == 100
        flags = sum(len(d.flagged) for d in run.documents)
        assert len(dom.xpath(".//tr[@class='flag']//a[contains(@class, 'play')]")) == flags > 0
        assert (
            len(dom.xpath(".//article[contains(@class, 'failed')]//code[@class='command']")) == 20
        )
        # The timeline is folded into at most 240 buckets, however long the run.
        assert run.timeline is not None and len(run.timeline.starts) <= 240
        assert len(dom.xpath(".//figure[@class='chart']")) == 5


def test_json_and_back(tmp_path: Path) -> None:
    run = synthetic_run(3)
    write_report(tmp_path / "r.json", run, command="narrator narrate in -o out")
    back, context = read_report(tmp_path / "r.json")
    assert back.documents == run.documents
    assert back.timeline == run.timeline
    assert context.command == "narrator narrate in -o out"
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["totals"]["documents"] == 3  # batch's JSON report, with more beside it
    write_report(tmp_path / "r.html", run)
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>")


def test_the_timeline_folds_seconds_into_buckets() -> None:
    timeline = Timeline()
    assert timeline.series() is None  # nothing was sent
    timeline.started(100.0, in_flight=1, rpm=120.0)  # the first request is second 0
    timeline.started(100.5, in_flight=2, rpm=120.0)
    timeline.throttled(101.2, cut=True)
    timeline.started(102.0, in_flight=1, rpm=84.0)
    timeline.retried(103.9)
    series = timeline.series()
    assert series is not None and series.bucket == 1
    assert series.starts == (2, 0, 1, 0)
    assert (series.throttled, series.cuts, series.retries) == ((0, 1, 0, 0),) * 2 + ((0, 0, 0, 1),)
    assert series.peak == (2, 0, 1, 0)
    assert series.rpm == (120.0, None, 84.0, None)
    # Ten hours: at most 240 buckets, so 120 of 5 minutes; nothing is lost in the folding.
    for second in range(0, 36_000, 7):
        timeline.started(100.0 + second, in_flight=3, rpm=60.0)
    long = timeline.series()
    assert long is not None and long.bucket == 300 and len(long.starts) == 120
    assert sum(long.starts) == 3 + len(range(0, 36_000, 7)) and max(long.peak) == 3
    assert min(r for r in long.rpm if r is not None) == 60.0
