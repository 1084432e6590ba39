"""Issue 27, "the second hour": what a new user still tripped over, each with its test.

The library refuses a bad output name before paying; its errors read as a library's;
the messages name the real cause. Real processes where the behaviour is a process's.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest

import narrator
from narrator.cli import main
from narrator.errors import ConfigError, Unreachable
from narrator.synth.providers.http import _connect_failure
from narrator.tools.emulator import EmulatorConfig, RunningEmulator, start_emulator

from .conftest import TEST_KEY, CliResult, run_cli

TEXT = " ".join(f"Sentence {n} of a short text that costs a few requests." for n in range(20))


async def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    """``narrator ARGS`` in this process (on a thread: it runs its own event loop)."""
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return CliResult(code, out, err)


def _settings(emulator: RunningEmulator, tmp_path: Path, **more: object) -> narrator.Settings:
    return narrator.Settings(
        api_key=TEST_KEY,
        base_url=emulator.url,
        cache_dir=tmp_path / "cache",
        rpm=6000,
        max_chars=80,
        **more,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("name", ["book.aac", "book", "book.mp3.txt"])
async def test_the_library_refuses_a_bad_output_name_before_any_request(
    emulator: RunningEmulator, tmp_path: Path, name: str
) -> None:
    with pytest.raises(ConfigError, match="unknown audio format"):
        await narrator.narrate(TEXT, tmp_path / name, _settings(emulator, tmp_path))
    assert emulator.stats.requests == 0


async def test_a_bad_output_among_many_sends_nothing(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    works = [
        narrator.Work(narrator.parse_text(TEXT), tmp_path / "good.mp3"),
        narrator.Work(narrator.parse_text(TEXT + " More."), tmp_path / "bad"),
    ]
    with pytest.raises(ConfigError, match="bad: unknown audio format"):
        await narrator.narrate_many(works, _settings(emulator, tmp_path))
    assert emulator.stats.requests == 0


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_host_raises_a_short_library_error(tmp_path: Path) -> None:
    settings = narrator.Settings(
        api_key=TEST_KEY,
        base_url=f"http://127.0.0.1:{_closed_port()}",
        cache_dir=str(tmp_path / "cache"),  # type: ignore[arg-type]  # a str is taken too
        concurrency=4,
        max_chars=60,
    )
    with pytest.raises(Unreachable) as caught:
        narrator.narrate_sync(TEXT, tmp_path / "a.mp3", settings)
    message = str(caught.value)
    assert "Settings.base_url" in message and "--base-url" not in message
    shown = "".join(traceback.format_exception(caught.value))
    # One traceback through narrate_sync, not the workers' frames once per worker.
    assert shown.count("attempts.py") == 0, shown
    assert len(shown.splitlines()) < 25, shown


def test_every_path_setting_takes_a_str(tmp_path: Path) -> None:
    lexicon = tmp_path / "lex.toml"
    lexicon.write_text('[words]\nnarrator = "nair-ay-tor"\n')
    settings = narrator.Settings(
        provider="espeak",
        cache_dir=str(tmp_path / "cache"),  # type: ignore[arg-type]
        lexicon=(str(lexicon),),  # type: ignore[arg-type]
        lexicon_override=[str(lexicon)],  # type: ignore[arg-type]
    )
    assert settings.cache_dir == tmp_path / "cache"
    assert settings.lexicon == (lexicon,) and settings.lexicon_override == (lexicon,)
    report = narrator.narrate_sync("A narrator speaks.", tmp_path / "a.wav", settings)
    assert report.status == "done" and (tmp_path / "cache").is_dir()


async def test_https_against_a_plain_http_server_says_so(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("A short text.")
    result = await run_cli(
        "narrate", str(tmp_path / "a.txt"), "-o", str(tmp_path / "a.mp3"),
        "--base-url", emulator.url.replace("http://", "https://"), "--api-key", TEST_KEY,
        "--cache-dir", str(tmp_path / "c"), "--quiet",
    )  # fmt: skip
    assert result.code == 2, result.stderr
    assert "not permitted" not in result.stderr
    assert "plain HTTP" in result.stderr and "--base-url starts with http://" in result.stderr


def _dns_error(host: str) -> aiohttp.ClientConnectorDNSError:
    key = SimpleNamespace(host=host, port=443, ssl=True)
    return aiohttp.ClientConnectorDNSError(key, OSError(-2, "Name or service not known"))  # type: ignore[arg-type]


def test_no_network_with_the_default_host_is_not_blamed_on_the_base_url() -> None:
    offline = _connect_failure(_dns_error("api.aimlapi.com"))
    assert "online" in offline and "base_url" not in offline
    typo = _connect_failure(_dns_error("api.aimlapi.con"))
    assert "no such host" in typo and "Settings.base_url" in typo


async def test_an_interrupt_sent_to_the_process_group_is_one_interrupt(tmp_path: Path) -> None:
    """`timeout -s INT` signals the command, then its whole group: two SIGINTs at once.
    One interrupt: the summary is printed, the requests in flight finish and are kept,
    and the rerun pays for no chunk twice."""
    source = tmp_path / "road.txt"
    source.write_text(
        "\n\n".join(f"Mile {n} of the road ran between stone walls." for n in range(9))
    )
    emulator = await start_emulator(EmulatorConfig(api_key=TEST_KEY, engine="tone", latency=0.3))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_KEY")}
    command = [
        sys.executable, "-m", "narrator", "narrate", str(source), "-o", str(tmp_path / "road.mp3"),
        "--base-url", emulator.url, "--api-key", TEST_KEY, "--cache-dir", str(tmp_path / "c"),
        "--max-chars", "50", "--concurrency", "3", "--rpm", "100000", "--quiet",
    ]  # fmt: skip
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, env=env, start_new_session=True,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(30):
            while emulator.stats.requests < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        # What timeout(1) does: the command, then its whole group. Two deliveries (the
        # kernel merges two that arrive before the first is taken: wait until it is).
        proc.send_signal(signal.SIGINT)
        assert proc.stderr is not None
        said = b""
        async with asyncio.timeout(30):
            while b"narrator: stopping" not in said:
                line = await proc.stderr.readline()
                assert line, said
                said += line
        os.killpg(proc.pid, signal.SIGINT)
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
        err = said + err
        first = emulator.stats.requests
        again = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        async with asyncio.timeout(60):
            out2, err2 = await again.communicate()
        total = emulator.stats.requests
    finally:
        await emulator.close()
    stderr = err.decode()
    assert proc.returncode == 130, stderr
    assert "0 of 1 audiobooks written" in stderr and "run the same command again" in stderr
    assert "stopped" in out.decode()
    assert again.returncode == 0, err2.decode()
    (row,) = [line for line in out2.decode().splitlines() if "road.txt" in line]
    chunks = int(row.split()[2])
    assert 0 < first < chunks
    assert total == chunks  # every chunk paid once: those in flight were kept


async def test_say_writes_the_outputs_format_and_refuses_a_bad_name_before_paying(
    emulator: RunningEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--base-url", emulator.url, "--api-key", TEST_KEY]
    for name in ("hi.mp3", "hi.ogg"):
        result = await in_process(capsys, "say", "Hello", "-o", str(tmp_path / name), *common)
        assert result.code == 0, result.stderr
        head = (tmp_path / name).read_bytes()[:4]
        assert head[:3] == b"ID3" if name.endswith(".mp3") else head == b"OggS", head
    assert emulator.stats.requests == 2
    result = await in_process(capsys, "say", "Hello", "-o", str(tmp_path / "hi.aac"), *common)
    assert result.code == 2 and "unknown audio format" in result.stderr, result.stderr
    assert emulator.stats.requests == 2  # nothing sent for a name it cannot write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hi.mp3", "hi.ogg"]


async def test_say_exits_2_for_a_wrong_address_like_narrate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    result = await in_process(capsys, "say", "Hello", "--base-url", url, "--api-key", TEST_KEY)
    assert result.code == 2, result.stderr
    assert "--base-url" in result.stderr and "Settings." not in result.stderr


def test_the_aimlapi_endpoint_pasted_as_the_base_url_is_taken_as_meant() -> None:
    from narrator.synth.providers.aimlapi import AimlApiProvider

    for url in ("http://127.0.0.1:8000", "http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1/tts"):
        assert AimlApiProvider.endpoint(url) == "http://127.0.0.1:8000/v1/tts"


def _parse_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err


def test_a_mistyped_option_or_command_gets_a_guess_and_its_commands_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = _parse_error(capsys, "narrate", "a.txt", "--voise", "Ethan")
    assert err.startswith("narrator narrate: unrecognized arguments: --voise")
    assert "did you mean --voice?" in err and "(see narrator narrate --help)" in err
    err = _parse_error(capsys, "watch", "inbox", "-o", "out", "--on-dne", "true")
    assert "did you mean --on-done?" in err and "narrator watch --help" in err
    err = _parse_error(capsys, "narate", "a.txt")
    assert "did you mean narrate?" in err and "(see narrator --help)" in err
    assert "did you mean" not in _parse_error(capsys, "narrate", "a.txt", "--zzzzzz")


def test_a_mistyped_option_never_echoes_its_value(capsys: pytest.CaptureFixture[str]) -> None:
    err = _parse_error(capsys, "narrate", "a.txt", "--api-kye=sk-never-shown-123")
    assert "sk-never-shown-123" not in err
    assert "unrecognized arguments: --api-kye;" in err and "did you mean --api-key?" in err


def test_narrate_help_shows_what_people_reach_for_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["narrate", "--help"])
    text = capsys.readouterr().out
    assert text.splitlines()[0].startswith("usage: narrator narrate INPUT [INPUT ...] [-o ")
    groups = [line for line in text.splitlines() if line and not line.startswith(" ")]
    assert groups[1:4] == ["positional arguments:", "options:", "the usual options:"], groups
    usual = text.split("the usual options:")[1].split("\n\n")[0]
    for option in ("-o FILE|DIR", "--voice", "--provider", "--api-key", "--format"):
        assert option in usual, usual
    assert "--include" not in usual and text.index("--include") > text.index("--api-key")


def test_a_long_chunk_is_shown_in_bounded_cues() -> None:
    from narrator.book.subtitles import MAX_CUE_CHARS, Cue, bounded, render_subtitles

    text = " ".join(f"Clause {n} of a long sentence, read slowly;" for n in range(14)) + " End."
    cues = bounded(Cue(10.0, 44.0, text))  # a 632-character, 34-second cue, as reported
    assert len(cues) >= 5
    assert all(len(c.text) <= MAX_CUE_CHARS for c in cues)
    assert cues[0].start == 10.0 and cues[-1].end == 44.0
    assert all(a.end == b.start for a, b in itertools.pairwise(cues))
    assert " ".join(c.text for c in cues) == " ".join(text.split())  # nothing lost
    assert render_subtitles(cues, "srt").count(" --> ") == len(cues)
    assert bounded(Cue(0.0, 2.0, "A short one.")) == [Cue(0.0, 2.0, "A short one.")]


async def test_the_offline_estimate_uses_the_machines_pace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "article.txt"
    source.write_text("\n\n".join(f"Paragraph {n} is short. It ends here." for n in range(200)))
    result = await in_process(capsys, "estimate", str(source), "--provider", "espeak")
    assert result.code == 0, result.stderr
    total = next(line for line in result.stdout.splitlines() if line.startswith("total"))
    minutes, seconds = total.split()[-1].split(":")
    # About 8,000 characters: a few seconds of one core, not 3 s a "request" (1:12 before).
    assert int(minutes) == 0 and int(seconds) < 15, total
    assert "made on this machine" in result.stdout and "--assume-latency" not in result.stdout


def test_counts_of_one_read_in_the_singular(capsys: pytest.CaptureFixture[str]) -> None:
    from narrator.cli.watch import _line
    from narrator.run.status import Status

    one = narrator.DocumentReport(
        input="a.txt", output="a.wav", title="A", status=Status.DONE, chunks=1,
        billing_characters=1, audio_seconds=1.0, requests=1, retries=0, cached_chunks=0,
    )  # fmt: skip
    _line(one)
    assert "(1 chunk, 1 request, 1 character)" in capsys.readouterr().err


def test_the_offline_voices_are_described_as_what_they_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["voices", "--provider", "espeak"]) == 0
    listed = capsys.readouterr().out
    for word in ("Shanghainese", "Cantonese", "dialect", "Sichuanese"):
        assert word not in listed
    assert listed.count("eSpeak NG variant") == 17


def _old_novel(path: Path) -> Path:
    """A 1916 novel as Project Gutenberg-style EPUBs have it: a title page with the
    copyright line and no EPUB types, a frontispiece with its caption, then chapters."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("harbour-1916")
    book.set_title("The Harbour Light")
    book.set_language("en")
    book.add_author("Margaret Hale")
    pages = {
        "front": '<html><body><p><img src="lamp.jpg" alt=""/></p>'
        "<p>HE HELD THE LANTERN HIGH AND WAITED.</p></body></html>",
        "title": "<html><body><h1>THE HARBOUR LIGHT</h1><p>BY MARGARET HALE</p>"
        "<p>ILLUSTRATED</p><p>NEW YORK: THE HOLLIS COMPANY, 1916</p>"
        "<p>Copyright, 1916, By The Hollis Company</p></body></html>",
        "ch1": "<html><body><h2>I. The Fog</h2><p>The fog came in before the boats did, "
        "and the keeper climbed the stair with his lantern.</p></body></html>",
        "ch2": "<html><body><h2>II. The Storm</h2><p>By midnight the wind had turned, "
        "and the light burned on through the rain.</p></body></html>",
    }
    items = {}
    for name, content in pages.items():
        items[name] = epub.EpubHtml(title=name, file_name=f"{name}.xhtml", lang="en")
        items[name].content = content
        book.add_item(items[name])
    book.toc = [
        epub.Link("ch1.xhtml", "I. The Fog", "ch1"),
        epub.Link("ch2.xhtml", "II. The Storm", "ch2"),
    ]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = [items["front"], items["title"], "nav", items["ch1"], items["ch2"]]
    epub.write_epub(str(path), book)
    return path


def test_an_old_epubs_copyright_line_and_frontispiece_caption_are_not_read(tmp_path: Path) -> None:
    document = narrator.load_document(_old_novel(tmp_path / "harbour.epub"))
    titles = [c.title for c in document.chapters]
    assert titles == [None, "I. The Fog", "II. The Storm"]  # the title page is no chapter:
    assert document.chapters[0].paragraphs == ("The Harbour Light. By Margaret Hale.",)
    assert "Copyright" not in document.text and "LANTERN HIGH" not in document.text
    assert document.author == "Margaret Hale"


def test_an_epubs_author_reaches_the_tags(tmp_path: Path) -> None:
    from mutagen.mp3 import MP3

    settings = narrator.Settings(provider="espeak", cache_dir=tmp_path / "cache")
    source = _old_novel(tmp_path / "harbour.epub")
    narrator.narrate_sync(source, tmp_path / "harbour.mp3", settings)
    tags = MP3(tmp_path / "harbour.mp3").tags
    assert tags is not None and str(tags["TPE1"]) == "Margaret Hale"


NEWS = """<html><head><title>Ferries return | The Gazette</title></head><body>
<nav><a href="/">Home</a> <a href="/news">News</a></nav>
<article>
<p class="dateline">October 22, 2019 report</p>
<h1>Night Ferries Return to the Isles</h1>
<p>The overnight ferry will sail again from next Monday, the operator said on Tuesday, after the
vessel passed its inspection at the second attempt. Passengers who booked cabins will be
contacted by email.</p>
<p>The service was suspended in August when the ship failed its safety inspection, leaving
islanders with a single daytime crossing for most of the autumn season.</p>
<h2>What changes for passengers</h2>
<p>Cabins can be booked from Friday. The first sailing leaves before dawn, and the car deck
opens an hour before departure for vehicles that were booked in advance.</p>
</article>
<footer>All rights reserved</footer>
</body></html>"""


def test_a_news_pages_dateline_is_read_with_its_headline(tmp_path: Path) -> None:
    (tmp_path / "news.html").write_text(NEWS)
    document = narrator.load_document(tmp_path / "news.html")
    first, second = document.chapters
    assert first.title == "Night Ferries Return to the Isles"
    assert first.paragraphs[0] == "October 22, 2019 report"
    assert second.title == "What changes for passengers"


def test_subtitles_come_and_go_without_encoding_the_book_again(tmp_path: Path) -> None:
    def run(kind: str | None) -> narrator.DocumentReport:
        settings = narrator.Settings(
            provider="espeak",
            cache_dir=tmp_path / "cache",
            audiobook=narrator.AudiobookOptions(subtitles=kind),
        )
        return narrator.narrate_sync(TEXT, tmp_path / "book.mp3", settings)

    book = tmp_path / "book.mp3"
    assert run("srt").status == "done"
    made = book.stat().st_mtime_ns
    srt = (tmp_path / "book.srt").read_text()
    assert run("vtt").status == "up-to-date"  # the other kind, from the one there
    vtt = (tmp_path / "book.vtt").read_text()
    assert vtt.startswith("WEBVTT") and vtt.count(" --> ") == srt.count(" --> ")
    assert run(None).status == "up-to-date"  # dropped: the sidecars go, the book stays
    assert not (tmp_path / "book.srt").exists() and not (tmp_path / "book.vtt").exists()
    assert book.stat().st_mtime_ns == made
