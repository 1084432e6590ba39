"""Hostile data against the real ``narrator``: a service's answers, file names, crafted
reports, tags and documents (issue 23). The loopback server and the measured process
are :mod:`tests.test_hostile`'s.

Each case ends in one clear line (or a clean success), no traceback, nothing leaked:
no key in stderr, either report or the store; no raw control character on a terminal.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
import tomllib
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp import web

from narrator.cli import main
from narrator.errors import InputError
from narrator.inputs.documents import Document, parse_bytes
from narrator.inputs.sources import find_inputs, read_inputs
from narrator.store.queue import QueueRow, record
from narrator.synth.providers.http import MAX_JSON_ITEMS, error_message, loads
from narrator.util.sanitize import clean_line, redact_bytes, shown, storable, tag_text

from . import test_hostile
from .conftest import CliResult
from .test_hostile import (
    CONTAINER,
    KEY,
    OPF,
    Handler,
    Hostile,
    assert_clean_failure,
    narrator,
    run_args,
    source,
)

Serve = Callable[[Handler], Awaitable[Hostile]]
serve = test_hostile.serve  # the fixture: a loopback server answering what a test says


def everything_written(tmp_path: Path) -> str:
    """Every byte narrator left under ``tmp_path`` (the store's rows too), as text."""
    texts = []
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file() and path.suffix != ".txt":
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    database = tmp_path / "cache" / "segments.db"
    for db in [database, *tmp_path.glob("cache/*.db")]:
        if db.exists():
            with sqlite3.connect(db) as conn:
                for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                    texts.extend(repr(row) for row in conn.execute(f"SELECT * FROM {table}"))
    return "\n".join(texts)


# --- answers bounded by what they hold ------------------------------------------------------


async def test_an_answer_of_millions_of_tiny_objects_is_refused_in_little_memory(
    serve: Serve, tmp_path: Path
) -> None:
    # 24 MB, a third of the byte cap: 8 million "{}" that were gigabytes once parsed.
    bomb = b"[" + b"{}," * (8 * 1024 * 1024) + b"{}]"

    async def tiny(_request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(body=bomb, status=201 if n % 2 else 503)

    server = await serve(tiny)
    (tmp_path / "t.txt").write_text("One short sentence.")
    result = await narrator(
        "narrate", str(tmp_path / "t.txt"), *run_args(server.url, tmp_path),
        env={"AIMLAPI_KEY": KEY},
    )  # fmt: skip
    assert_clean_failure(result, tmp_path, "gave up after 2 attempts")
    assert len(server.seen) == 2  # a 503 then a 201, each refused unread


def echo(status: int) -> Handler:
    """A service whose error quotes the request's headers back, key and all."""

    async def answer(request: web.Request, _n: int) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        message = (
            f"invalid request; headers: {{'Authorization': '{auth}'}}; "
            f"authorization={auth}; the key {auth.removeprefix('Bearer ')} is not allowed"
        )
        return web.json_response({"message": message, "code": "Oops"}, status=status)

    return answer


async def test_an_error_echoing_the_key_leaks_it_nowhere(serve: Serve, tmp_path: Path) -> None:
    server = await serve(echo(500))
    report = tmp_path / "report.json"
    result = await narrator(
        "narrate", str(source(tmp_path)), *run_args(server.url, tmp_path),
        env={"AIMLAPI_KEY": KEY},
    )  # fmt: skip
    assert_clean_failure(result, tmp_path, "service error 500", "[redacted]")
    assert server.seen and all(auth == f"Bearer {KEY}" for _, _, auth in server.seen)
    page = await narrator("report", str(report), "-o", str(tmp_path / "report.html"))
    assert page.code == 0, page.stderr
    assert KEY not in result.stderr + result.stdout
    assert KEY not in everything_written(tmp_path)
    assert "[redacted]" in report.read_text()


async def test_a_rejected_key_echoed_back_stops_the_run_without_leaking_it(
    serve: Serve, tmp_path: Path
) -> None:
    server = await serve(echo(401))
    result = await narrator(
        "narrate", str(source(tmp_path)), *run_args(server.url, tmp_path),
        env={"AIMLAPI_KEY": KEY},
    )  # fmt: skip
    assert result.code == 2 and "API key was rejected" in result.stderr
    assert KEY not in result.stderr and KEY not in everything_written(tmp_path)
    assert "Traceback" not in result.stderr and "[redacted]" in result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is False


# --- file names: not UTF-8, terminal escapes, line breaks ---------------------------------

HOSTILE_NAMES = (
    b"bad\xff\xfe.txt",  # not UTF-8
    b"esc\x1b]0;owned\x07\x1b[2J\x1b]52;c;ZWNobyBvd25lZA==\x07.txt",  # title, clear, clipboard
    b"new\nline: FAILED.txt",  # a forged line of output
    b'FBI\n"NASA" = "forged" #.txt',  # a forged lexicon entry, once written by `words`
)


def hostile_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for n, name in enumerate(HOSTILE_NAMES):
        with open(os.path.join(os.fsencode(folder), name), "wb") as fh:
            fh.write(f"Document number {n} has a name of its own, read by the FBI.".encode())
    (folder / "plain.txt").write_text("A plain document with a plain name.")
    return folder


def assert_shown(result: CliResult, code: int = 0) -> str:
    """Exit ``code``, no traceback, and no name printed raw: every control character
    and every byte that is not UTF-8 shown as an escape."""
    out = result.stdout + result.stderr
    assert result.code == code, out
    assert "Traceback" not in out
    out.encode("utf-8")  # strict: a UTF-8 terminal could print it all (no surrogates)
    assert "\x1b" not in out and "\x07" not in out and "\ufffd" not in result.stderr
    assert "new\nline" not in out
    return out


def run(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> str:
    """``narrator ARGS`` in this process, checked as :func:`assert_shown` checks."""
    result = main(list(args))
    captured = capsys.readouterr()
    return assert_shown(CliResult(result, captured.out, captured.err), code)


def test_hostile_file_names_in_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = hostile_folder(tmp_path)
    estimate = run(capsys, "estimate", str(folder))
    assert "bad\\xff\\xfe.txt" in estimate and "new\\nline: FAILED.txt" in estimate
    assert "esc\\x1b]0;owned\\x07\\x1b[2J" in estimate and "total (5 documents)" in estimate
    run(capsys, "words", str(folder))
    lexicon = run(capsys, "words", str(folder), "--format", "toml")
    # A name's line break cannot add an entry to the lexicon it writes.
    assert tomllib.loads(lexicon)["words"] == {"FBI": "FBI"}
    out, cache, report = tmp_path / "out", tmp_path / "cache", tmp_path / "r.json"
    common = ["--provider", "espeak", "--cache-dir", str(cache), "--format", "mp3"]
    narrate = run(capsys, "narrate", str(folder), "-o", f"{out}/", *common, "--report", str(report))
    assert "5 of 5 audiobooks written" in narrate
    # The audiobooks are named in text; the report says which input each came from.
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        'FBI "NASA" = "forged" #.mp3',
        "bad\ufffd\ufffd.mp3",
        "esc.mp3",
        "new line: FAILED.mp3",
        "plain.mp3",
    ]
    data = json.loads(report.read_bytes().decode("utf-8"))  # strict: valid UTF-8
    inputs = {Path(d["input"]).name for d in data["documents"]}
    assert "bad\\xff\\xfe.txt" in inputs and "new\nline: FAILED.txt" in inputs
    check = run(capsys, "check", str(folder), "-o", f"{out}/", *common)
    assert check.count("1 segments checked, 0 flagged") == 5
    run(capsys, "cache", "info", "--cache-dir", str(cache))
    # A name that is not UTF-8 in the folder of audiobooks, too.
    shutil.copy(out / "plain.mp3", os.path.join(os.fsencode(out), b"raw\xff\x1b[2J.mp3"))
    assert "6 episodes" in run(capsys, "feed", str(out), "--base-url", "http://h/")
    urls = {e.get("url") for e in ET.parse(out / "feed.xml").getroot().iter("enclosure")}
    assert "http://h/raw%FF%1B%5B2J.mp3" in urls  # the bytes of the name: it serves the file
    page = tmp_path / "r.html"
    run(capsys, "report", str(report), "-o", str(page))
    assert "\x1b" not in page.read_text()


async def test_a_folder_of_hostile_names_narrated_by_the_real_process(tmp_path: Path) -> None:
    folder = hostile_folder(tmp_path)
    args = ["-o", f"{tmp_path / 'out'}/", "--provider", "espeak", "--cache-dir", str(tmp_path)]
    narrate = assert_shown(await narrator("narrate", str(folder), *args))
    assert "5 of 5 audiobooks written" in narrate and "bad\\xff\\xfe.txt" in narrate


def test_status_shows_a_queued_name_never_obeys_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "in/evil\x1b]0;owned\x07\x1b[2J\nfailed  100%  forged.txt"
    record(tmp_path, [QueueRow(name, "out/x.mp3", "failed", "why: \x1b[31mred\x9b")])
    assert main(["status", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out
    assert len(out.splitlines()) == 2  # the row and the counts: no forged line
    assert "evil\\x1b]0;owned\\x07\\x1b[2J\\nfailed" in out


def test_an_error_naming_a_hostile_file_is_one_shown_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "gone\x1b[2J\nnarrator: all fine.txt")
    assert main(["estimate", missing]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "\x1b" not in err and "gone\\x1b[2J\\nnarrator" in err


async def test_log_lines_are_shown(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("A document of the folder.")
    (tmp_path / "secret.txt").write_text("Elsewhere.")
    (folder / "link\x1b[2J\nnarrator: ok.txt").symlink_to(tmp_path / "secret.txt")
    err = assert_shown(await narrator("estimate", str(folder)))
    (skipped,) = [line for line in err.splitlines() if "skipped" in line]
    assert "link\\x1b[2J\\nnarrator: ok.txt: a link to" in skipped and "\x1b" not in err


# --- a crafted report, tags and the feed ------------------------------------------------------

EVIL = "<script>alert(1)</script>\"'><x-evil onload=1 a='&\x1b[2J"


class Tags(HTMLParser):
    """Every tag and attribute name on a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.update(name for name, _ in attrs)


def crafted_report() -> dict[str, object]:
    flag = {"chunk": 3, "text": EVIL, "kind": EVIL, "reason": EVIL, "measured": 1.0,
            "expected": 2.0, "attempts": 2, "start": 1.5}  # fmt: skip
    document = {
        "input": EVIL, "output": EVIL + ".mp3", "title": EVIL, "status": "done", "chunks": 4,
        "billing_characters": 40, "audio_seconds": 3.0, "requests": 4, "retries": 1,
        "cached_chunks": 0, "errors": [EVIL], "chapters": [{"title": EVIL, "start": 0.0}],
        "files": [EVIL + ".mp3"], "flagged": [flag],
    }  # fmt: skip
    failed = {**document, "status": "failed", "files": [], "flagged": []}
    return {
        "provider": EVIL, "rpm": 60, "concurrency": 4, "documents": [document, failed],
        "requests": 8, "retries": 1, "throttled": 1, "seconds": 9.0, "stopped": EVIL,
        "price_per_10k_chars": 0.1, "command": EVIL,
        "timeline": {"bucket": 1, "starts": [2, 2], "throttled": [0, 1], "cuts": [0, 1],
                     "retries": [0, 1], "peak": [2, 2], "rpm": [60.0, None]},
    }  # fmt: skip


def test_a_crafted_report_is_escaped_in_every_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(crafted_report()))
    page = tmp_path / "run.html"
    assert main(["report", str(path), "-o", str(page)]) == 0
    html = page.read_text()
    tags = Tags()
    tags.feed(html)
    assert "x-evil" not in tags.tags and "onload" not in tags.attributes
    assert tags.tags.count("script") == 1  # the page's own
    assert "\x1b" not in html and html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 10
    assert "\x1b" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rpm", "<script>"),
        ("concurrency", "4<x-evil>"),
        ("seconds", float("nan")),
        ("documents", [{"input": "x", "status": "done", "audio_seconds": 1e999}]),
        ("documents", [{"input": "x", "status": "done", "flagged": [{"chunk": "<x-evil>"}]}]),
        ("documents", [{"input": "x", "status": "<x-evil>"}]),
        ("documents", ["<x-evil>"]),
        ("timeline", {"bucket": 1, "starts": [1, 2], "peak": [1]}),
        ("timeline", {"bucket": 1, "starts": ["<x-evil>"]}),
        ("timeline", {"bucket": 0, "starts": [1]}),
    ],
)
def test_a_report_holding_the_wrong_types_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: object
) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({**crafted_report(), field: value}))
    assert main(["report", str(path), "-o", str(tmp_path / "run.html")]) == 2
    err = capsys.readouterr().err
    assert "not a narrator JSON report" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run.html").exists()


XML_ILLEGAL = "Ti\ufffftle\ufffe \x01\x1b[31m\x7f\x85\u202e end"


def test_tags_and_chapter_titles_are_clean_in_every_format(tmp_path: Path) -> None:
    import mutagen

    document = tmp_path / "book.md"
    document.write_text(
        f"# {XML_ILLEGAL}\n\nThe first chapter is short.\n\n"
        f"# Two {XML_ILLEGAL}\n\nThe second one is short too.\n"
    )
    for fmt in ("mp3", "flac", "ogg", "m4b"):
        out = tmp_path / f"book.{fmt}"
        assert main([
            "narrate", str(document), "-o", str(out), "--provider", "espeak", "--quiet",
            "--cache-dir", str(tmp_path / "cache"), "--title", XML_ILLEGAL,
            "--author", XML_ILLEGAL,
        ]) == 0  # fmt: skip
        # FLAC and Ogg: chapter titles are CHAPTERnnnNAME comments, among the tags.
        texts = [str(v) for _, v in (mutagen.File(out).tags or {}).items()]
        if fmt == "mp3":  # chapter titles: TIT2 frames inside the CHAP frames
            texts += [str(f.sub_frames["TIT2"]) for f in mutagen.File(out).tags.getall("CHAP")]
        elif fmt == "m4b":  # chapters in the MP4 chapter track, as ffmpeg reads them
            texts += [ffmetadata(out)]
        joined = "\n".join(texts)
        assert "Ti tle end" in joined and "Two Ti tle end" in joined, (fmt, joined)
        for bad in "\ufffe\uffff\x01\x1b\x7f\x85\u202e":
            assert bad not in joined, (fmt, repr(bad))


def ffmetadata(path: Path) -> str:
    """The tags and chapters ffmpeg reads from ``path``, as an ffmetadata file."""
    import subprocess

    import imageio_ffmpeg

    found = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"],
        capture_output=True, check=True,
    )  # fmt: skip
    return found.stdout.decode("utf-8")


def test_the_feed_stays_well_formed_whatever_the_tags_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import mutagen
    from mutagen.id3 import TIT2, TPE1

    shelf = tmp_path / "shelf"
    source_file = tmp_path / "t.txt"
    source_file.write_text("One short sentence.")
    run(
        capsys, "narrate", str(source_file), "-o", str(shelf / "a.mp3"), "--provider", "espeak",
        "--quiet", "--cache-dir", str(tmp_path / "cache"),
    )  # fmt: skip
    # Tags written by someone else: every character XML 1.0 forbids.
    tags = mutagen.File(shelf / "a.mp3").tags
    tags.add(TIT2(encoding=3, text=["A\ufffeB\uffffC\x01D\x0bE\ud7ffF"]))
    tags.add(TPE1(encoding=3, text=["\x1b]0;owned\x07Author\x7f"]))
    tags.save(shelf / "a.mp3")
    run(capsys, "feed", str(shelf), "--base-url", "http://h/", "--title", "\uffffPod")
    channel = ET.parse(shelf / "feed.xml").getroot()[0]  # parses: well-formed XML
    assert channel.findtext("title") == "Pod"
    assert channel.findtext("item/title") == "A B C D E\ud7ffF"
    assert "owned" not in (shelf / "feed.xml").read_text()


# --- an EPUB that lies about its members --------------------------------------------------------

HEAD = b'<html xmlns="http://www.w3.org/1999/xhtml"><body><p>A short chapter. '


def deflated_run(head: bytes, megabytes: int) -> bytes:
    """A raw deflate stream of ``head`` then ``megabytes`` MB of "a", made in milliseconds:
    after a full flush the same block compresses to the same bytes, so it is repeated."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    piece = comp.compress(b"a" * (1 << 20)) + comp.flush(zlib.Z_FULL_FLUSH)
    return start + piece * megabytes + comp.flush()


def zip_of(members: list[tuple[str, int, bytes, bytes]]) -> bytes:
    """A zip archive written by hand: (name, method, stored bytes, what it declares to
    inflate to); the sizes and the checksum are those of the declared bytes."""
    body, central = bytearray(), bytearray()
    for name, method, data, declared in members:
        raw = name.encode()
        head = struct.pack(
            "<HHHHHIIIHH", 20, 0, method, 0, 0, zlib.crc32(declared), len(data), len(declared),
            len(raw), 0,
        )  # fmt: skip
        central += b"PK\x01\x02" + struct.pack("<H", 20) + head
        central += struct.pack("<HHHII", 0, 0, 0, 0, len(body)) + raw
        body += b"PK\x03\x04" + head + raw + data
    count = len(members)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(central), len(body), 0)
    return bytes(body + central + end)


async def test_an_epub_member_lying_about_its_size_costs_what_it_declares(
    tmp_path: Path,
) -> None:
    declared = (HEAD + b"a" * 4096)[:4096]  # its checksum is right: only the size lies
    book = tmp_path / "lying.epub"
    book.write_bytes(
        zip_of([
            ("mimetype", 0, b"application/epub+zip", b"application/epub+zip"),
            ("META-INF/container.xml", 0, CONTAINER, CONTAINER),
            ("content.opf", 0, OPF, OPF),
            ("c1.xhtml", 8, deflated_run(HEAD, 600), declared),  # 600 MB in 600 KB
        ])
    )  # fmt: skip
    assert book.stat().st_size < 1_000_000
    # It once inflated 600 MB (up to 2 GB) in one call before cutting it to 4 KB.
    estimate = await narrator("estimate", str(book))  # the helper fails past 400 MB
    assert estimate.code == 0 and "Traceback" not in estimate.stderr, estimate.stderr
    assert "lying.epub" in estimate.stdout
    short = zip_of([("mimetype", 0, b"application/epub+zip", b"application/epub+zip"),
                    ("c1.xhtml", 8, deflated_run(HEAD, 0)[:40], declared)])  # fmt: skip
    with pytest.raises(InputError, match=r"not a readable EPUB \(Bad CRC-32"):
        parse_bytes(short, kind="epub", source="short.epub")
    with pytest.raises(InputError, match="compressed with method 12"):
        parse_bytes(zip_of([("mimetype", 12, b"x", b"x")]), kind="epub", source="bzip.epub")


# --- a folder's entry swapped between the listing and the open ---------------------------------


@pytest.mark.parametrize("swap", ["link", "fifo"])
async def test_an_entry_swapped_after_the_listing_is_not_read(tmp_path: Path, swap: str) -> None:
    folder, outside = tmp_path / "in", tmp_path / "secret.txt"
    folder.mkdir()
    outside.write_text("A secret that lives outside the folder.")
    (folder / "a.txt").write_text("A document of the folder.")
    entry = folder / "b.txt"
    entry.write_text("Another document of the folder.")
    (folder / "inner.txt").symlink_to(folder / "a.txt")  # a link inside stays fine
    items, _ = find_inputs([str(folder)])
    entry.unlink()  # the race, won by the other side: the entry is now something else
    if swap == "link":
        entry.symlink_to(outside)
    else:
        os.mkfifo(entry)  # opening it for reading would wait for a writer forever
    read = await read_inputs(items)
    by_name = {Path(item.location).name: result for item, result in zip(items, read, strict=True)}
    assert isinstance(by_name["a.txt"], Document) and isinstance(by_name["inner.txt"], Document)
    refused = by_name["b.txt"]
    assert isinstance(refused, InputError) and "changed since its folder was listed" in str(refused)


# --- the functions everything passes through ------------------------------------------------


def test_shown_makes_every_control_visible_and_keeps_text() -> None:
    name = os.fsdecode(b"caf\xc3\xa9 \xff\x1b]0;t\x07\n\r\t\x7f") + "\x9b\u202eend.txt"
    assert shown(name) == "café \\xff\\x1b]0;t\\x07\\n\\r\\t\\x7f\\x9b\\u202eend.txt"
    assert shown("Plain title — 北京 ok") == "Plain title — 北京 ok"
    assert storable(name).encode("utf-8")  # what SQLite, JSON and XML can hold
    assert "\\xff" in storable(name) and "\x1b" in storable(name)  # controls stay: data
    assert tag_text("A\ufffeB\uffff\x00C\x1b[31mD\u202e") == "A B CD"  # a sequence goes whole


@pytest.mark.parametrize(
    ("said", "kept"),
    [
        (f"headers: Authorization: Bearer {KEY}", "headers: Authorization: Bearer [redacted]"),
        (f'{{"authorization": "Bearer {KEY}"}}', '{"authorization": "Bearer [redacted]"}'),
        ("x-api-key=abc12345678 rejected", "x-api-key=[redacted] rejected"),
        ("api_key: 'sk-proj-9x8y7z6w'", "api_key: '[redacted]'"),
        ("basic dXNlcjpwYXNz0w== refused", "basic [redacted] refused"),
        # Words are not keys: a message about one keeps its sense.
        ("The bearer of bad news", "The bearer of bad news"),
        ("Missing API key: send the header 'Authorization: Bearer <key>'",
         "Missing API key: send the header 'Authorization: Bearer <key>'"),
    ],
)  # fmt: skip
def test_credentials_are_redacted_words_are_not(said: str, kept: str) -> None:
    assert clean_line(said) == kept


def test_the_key_itself_is_redacted_in_any_shape_of_answer() -> None:
    body = json.dumps({"message": f"key {KEY[3:]} unknown", "echo": KEY[3:]}).encode()
    assert KEY[3:].encode() not in redact_bytes(body, secrets=(KEY[3:],))
    assert error_message(redact_bytes(body, secrets=(KEY[3:],)), 401) == "key [redacted] unknown"


def test_json_answers_are_bounded_by_what_they_hold() -> None:
    assert loads(b'{"audio": {"url": "http://x/a.wav"}, "usage": {"characters": 3}}')
    inline = b'{"output": {"audio": {"data": "' + b"QUJD" * 1_000_000 + b'"}}}'
    assert loads(inline)  # audio sent inline is one value, however long
    with pytest.raises(ValueError, match="over 10,000 JSON values"):
        loads(b"[" + b"{}," * MAX_JSON_ITEMS + b"{}]")
    with pytest.raises(ValueError, match="over 10,000 JSON values"):
        loads(b"[" * 200_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        loads(b"[" * 5_000 + b"]" * 5_000)


async def test_a_link_of_megabytes_is_refused_not_stored(serve: Serve, tmp_path: Path) -> None:
    async def long_link(_request: web.Request, _n: int) -> web.StreamResponse:
        link = "http://127.0.0.1:9/" + "a" * 5_000_000 + ".wav"
        return web.json_response({"audio": {"url": link}}, status=201)

    server = await serve(long_link)
    (tmp_path / "t.txt").write_text("One short sentence.")
    result = await narrator(
        "narrate", str(tmp_path / "t.txt"), *run_args(server.url, tmp_path),
        env={"AIMLAPI_KEY": KEY},
    )  # fmt: skip
    assert_clean_failure(result, tmp_path, "audio link is 5,000,023 characters long")
    assert "a" * 20_000 not in everything_written(tmp_path)


def test_a_book_in_a_folder_not_named_in_utf8_is_stored_and_found_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = os.path.join(os.fsencode(tmp_path), b"dir\xff")
    os.mkdir(folder)
    with open(os.path.join(folder, b"a.txt"), "wb") as fh:
        fh.write(b"Hello there, from a folder with an odd name.")
    document = os.fsdecode(os.path.join(folder, b"a.txt"))
    args = ["narrate", document, "--provider", "espeak", "--cache-dir", str(tmp_path / "c")]
    assert "1 of 1 audiobooks written" in run(capsys, *args)
    assert os.path.exists(os.path.join(folder, b"a.wav"))  # beside it, in its real folder
    again = run(capsys, *args)
    assert "1 up to date" in again and "dir\\xff/a.txt" in again


@pytest.mark.parametrize(("provider", "variable"), [("dashscope", "DASHSCOPE_API_KEY"),
                                                    ("openai", "OPENAI_API_KEY")])  # fmt: skip
async def test_say_and_every_provider_keep_the_key_out_of_an_echoed_error(
    serve: Serve, tmp_path: Path, provider: str, variable: str
) -> None:
    server = await serve(echo(400))
    result = await narrator(
        "say", "Hello there.", "--provider", provider, "--base-url", server.url,
        "-o", str(tmp_path / "a.wav"), env={variable: KEY},
    )  # fmt: skip
    assert result.code != 0 and "Traceback" not in result.stderr
    assert KEY not in result.stderr + result.stdout and "[redacted]" in result.stderr
    assert server.seen and all(auth == f"Bearer {KEY}" for _, _, auth in server.seen)
