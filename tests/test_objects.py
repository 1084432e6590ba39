"""Segment audio in a real S3 server (the shared SeaweedFS, each test under a prefix of its
own), the cache folder reading through to it, and books written under an s3:// DEST.

An outage is made with a loopback TCP proxy this file controls, never by touching the
shared server."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from narrator.errors import AudioError, ConfigError, InputError, ObjectStoreError
from narrator.inputs.model import parse_text
from narrator.run.pipeline import narrate, narrate_many
from narrator.run.results import DocumentReport, ProgressEvent, RunReport, Work
from narrator.settings import Settings
from narrator.store import Store, segment_key
from narrator.store.objects import S3Objects, is_s3_url, parse_url, upload_book
from narrator.tools.emulator import RunningEmulator
from narrator.util.wav import tone_pcm, wav_bytes

from .conftest import TEST_KEY
from .faults import LoopbackProxy
from .stores import StoreBackend

MAX = 50 * 1024 * 1024
KEY = segment_key(provider="test", voice="v", text="hello")
OTHER = segment_key(provider="test", voice="v", text="other")


def tone(seconds: float = 0.2, freq: float = 440.0) -> bytes:
    return wav_bytes(tone_pcm(seconds, 24000, freq=freq), 24000)


def objects_at(url: str, **kw: object) -> S3Objects:
    return S3Objects(url, max_bytes=kw.pop("max_bytes", MAX), backoff=(0.01, 0.05), **kw)  # type: ignore[arg-type]


def names(objects: S3Objects) -> list[str]:
    """Every object under the test's prefix, relative to it."""
    answer = objects._client.list_objects_v2(Bucket=objects.url.bucket, Prefix=objects.url.prefix)
    return sorted(o["Key"][len(objects.url.prefix) + 1 :] for o in answer.get("Contents", []))


def messages(caplog: pytest.LogCaptureFixture, part: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if part in r.getMessage()]


# --- the URL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("s3://AKIAEXAMPLE:hunter2secret@bucket/p", "hunter2secret"),
        ("s3://bucket/p?endpoint=http://AKIAEXAMPLE:hunter2secret@127.0.0.1:9000", "hunter2secret"),
        ("s3://bucket/p?secret_key=hunter2secret", "hunter2secret"),
        ("s3://bucket/p?endpoint=http://h:1&aws_secret_access_key=hunter2secret", "hunter2secret"),
    ],
)
def test_credentials_never_go_in_the_url(url: str, secret: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(provider="espeak", objects_url=url)
    message = str(caught.value)
    assert secret not in message and "\n" not in message
    assert message.startswith("objects_url: ")


@pytest.mark.parametrize(
    "url",
    [
        "http://bucket/p",
        "s3://Bad_Bucket/p",
        "s3://bucket/a/../b",
        "s3://bucket/p?endpoint=ftp://h:1",
        "s3://bucket/p?endpoint=http://h:1/path",
        "s3://bucket/p?region=EU WEST",
        "s3://bucket/p#frag",
        "s3://bucket/p\n",
    ],
)
def test_a_bad_url_is_one_line(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_url(url)
    assert "\n" not in str(caught.value)


def test_a_url_is_kept_in_its_printable_form() -> None:
    settings = Settings(
        provider="espeak", objects_url="s3://narrator/dev/x/?endpoint=http://127.0.0.1:8340/"
    )
    assert settings.objects_url == "s3://narrator/dev/x?endpoint=http://127.0.0.1:8340"
    url = parse_url("s3://b.k/?region=eu-west-1")
    assert (url.bucket, url.prefix, url.endpoint, url.region) == ("b.k", "", None, "eu-west-1")
    assert url.name("segments/ab/x.wav") == "segments/ab/x.wav"
    assert is_s3_url("S3://b/p") and not is_s3_url("/srv/books") and not is_s3_url(None)


def test_boto3_is_not_imported_without_an_object_store(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("Hello there.")
    code = (
        "import sys; from narrator.cli import main; "
        "code = main(['narrate', 't.txt', '--provider', 'espeak', '-o', 'out.wav', "
        "'--cache-dir', 'cache', '--quiet']); "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')); "
        "print(code, loaded)"
    )
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stderr
    assert (tmp_path / "out.wav").stat().st_size > 1000


# --- the objects --------------------------------------------------------------------------


def test_put_is_idempotent_and_a_retake_replaces(s3_url: str, tmp_path: Path) -> None:
    objects = objects_at(s3_url)
    first, retake = tmp_path / "first.wav", tmp_path / "retake.wav"
    first.write_bytes(tone())
    retake.write_bytes(tone(freq=660.0))
    assert not objects.exists(KEY)
    assert objects.put(KEY, first) is True
    assert objects.put(KEY, first) is False  # same key, same audio: nothing sent
    assert objects.exists(KEY)
    assert names(objects) == [f"segments/{KEY[:2]}/{KEY}.wav"]
    assert objects.put(KEY, retake) is True  # the take the quality gate kept
    got = tmp_path / "got.wav"
    assert objects.get(KEY, got) and got.read_bytes() == retake.read_bytes()
    assert objects.get(OTHER, tmp_path / "none.wav") is False
    broken = tmp_path / "broken.wav"
    broken.write_bytes(tone()[:100])
    with pytest.raises(AudioError):
        objects.put(OTHER, broken)  # a local file no longer whole never reaches the bucket
    assert not objects.exists(OTHER)


def test_a_missing_bucket_or_bad_credentials_is_one_line(
    s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ObjectStoreError, match="has no bucket narrator-none"):
        objects_at(s3_url.replace("s3://narrator/", "s3://narrator-none/", 1))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(ObjectStoreError, match="refused the credentials") as caught:
        objects_at(s3_url)
    assert "wrong-secret" not in str(caught.value)


def test_a_segment_is_put_and_read_through(
    s3_url: str, tmp_path: Path, backend: StoreBackend
) -> None:
    objects = objects_at(s3_url)
    audio = tone()
    first = Store(tmp_path / "a", url=backend.url, objects=objects)
    try:
        segment = first.commit_bytes(KEY, audio)
        assert first._through is not None and first._through.outbox.drain(30) == 0
        assert not list((tmp_path / "a" / "segments" / "outbox").iterdir())
        # The row says done, the file is gone: fetched back rather than made again.
        segment.path.unlink()
        again = first.lookup(KEY)
        assert again is not None and again.path.read_bytes() == audio
    finally:
        first.close()
    # Another cache: its row (SQLite) is not there, or (PostgreSQL) is shared and says
    # done; either way its file is read through, and recorded.
    second = Store(tmp_path / "b", url=backend.url, objects=objects)
    try:
        found = second.lookup(KEY)
        assert found is not None and found.path.read_bytes() == audio
        assert found.path.is_relative_to(tmp_path / "b" / "segments")
        assert second.info().states == {"downloaded": 1}
        assert second.lookup(OTHER) is None
        assert list((tmp_path / "b" / "segments" / "tmp").iterdir()) == []
    finally:
        second.close()


@pytest.mark.parametrize("kind", ["not a wav", "truncated", "over the cap"])
def test_a_corrupt_object_is_not_used(
    kind: str, s3_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audio = tone()
    body = {"not a wav": b"<html>nope</html>", "truncated": audio[:-200], "over the cap": audio}
    objects = objects_at(s3_url, max_bytes=len(audio) - 1 if kind == "over the cap" else MAX)
    objects._client.put_object(Bucket=objects.url.bucket, Key=objects.name(KEY), Body=body[kind])
    store = Store(tmp_path / "c", objects=objects)
    try:
        with caplog.at_level(logging.WARNING, logger="narrator"):
            assert store.lookup(KEY) is None
        assert messages(caplog, f"segment {KEY} in the object store is not usable")
        assert not (tmp_path / "c" / "segments" / KEY[:2] / f"{KEY}.wav").exists()
        assert list((tmp_path / "c" / "segments" / "tmp").iterdir()) == []
        # A row that says done, its file gone, the object corrupt: made again.
        store.commit_bytes(OTHER, audio)
        assert store._through is not None and store._through.outbox.drain(30) == 0
        objects._client.put_object(
            Bucket=objects.url.bucket, Key=objects.name(OTHER), Body=body[kind]
        )
        (tmp_path / "c" / "segments" / OTHER[:2] / f"{OTHER}.wav").unlink()
        assert store.lookup(OTHER) is None
        assert store.info().states == {"pending": 1}
    finally:
        store.close()


# --- the whole run ------------------------------------------------------------------------


async def test_two_caches_share_one_prefix_with_no_second_request(
    emulator: RunningEmulator, s3_url: str, tmp_path: Path, backend: StoreBackend
) -> None:
    text = "The first sentence is here. " + " ".join(
        f"Sentence {i} of the shared book." for i in range(6)
    )

    def settings(cache: str) -> Settings:
        return Settings(
            base_url=emulator.url, api_key=TEST_KEY, cache_dir=tmp_path / cache,
            store_url=backend.url, objects_url=s3_url, rpm=6000, concurrency=4, max_chars=60,
        )  # fmt: skip

    first = await narrate(text, tmp_path / "one.wav", settings("a"))
    paid = emulator.stats.requests
    assert first.status == "done" and paid == first.chunks > 1
    second = await narrate(text, tmp_path / "two.wav", settings("b"))
    assert second.status == "done" and second.chunks == first.chunks
    assert emulator.stats.requests == paid  # every segment came from the bucket
    assert (tmp_path / "one.wav").read_bytes() == (tmp_path / "two.wav").read_bytes()
    objects = objects_at(s3_url)
    stored = names(objects)
    assert len(stored) == paid
    for name in stored:  # segments/ab/<key>.wav, each the bytes of the first cache's file
        local = tmp_path / "a" / name
        assert name.startswith(f"segments/{local.stem[:2]}/") and local.is_file()


# --- an object store out of reach ---------------------------------------------------------


@pytest.fixture
def proxied(s3_url: str) -> Iterator[tuple[str, LoopbackProxy]]:
    with LoopbackProxy.in_front_of(s3_url) as proxy:
        yield proxy.url, proxy


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (a deadline only so a broken test ends; nothing timed)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never came true")


async def test_an_unreachable_object_store_is_waited_for(
    proxied: tuple[str, LoopbackProxy], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="narrator")
    url, proxy = proxied
    objects = await asyncio.to_thread(objects_at, url)
    where = f"waiting for the object store at 127.0.0.1:{proxy.port}"
    one = await asyncio.to_thread(Store, tmp_path / "one", objects=objects)
    other = await asyncio.to_thread(Store, tmp_path / "other", objects=objects)
    await asyncio.to_thread(one.commit_bytes, OTHER, tone(freq=550.0))
    assert one._through is not None and await asyncio.to_thread(one._through.outbox.drain, 30) == 0
    proxy.cut()
    # A segment made now is kept in the cache; its put waits. A lookup waits too (the
    # bucket may hold it: not paid for again).
    audio = tone()
    await asyncio.to_thread(one.commit_bytes, KEY, audio)
    assert (tmp_path / "one" / "segments" / "outbox" / KEY).exists()
    looking = asyncio.create_task(asyncio.to_thread(other.lookup, OTHER))
    await until(lambda: bool(messages(caplog, where)))
    await asyncio.sleep(0.1)  # both waiting a while, backing off
    assert not looking.done()
    proxy.restore()  # the same port, back
    found = await looking
    assert found is not None and found.path.read_bytes() == tone(freq=550.0)
    assert await asyncio.to_thread(one._through.outbox.drain, 30) == 0
    assert await asyncio.to_thread(objects.exists, KEY)
    assert not (tmp_path / "one" / "segments" / "outbox" / KEY).exists()
    assert len(messages(caplog, where)) == 1  # one line per outage, however many waited
    assert messages(caplog, f"the object store at 127.0.0.1:{proxy.port} is back") != []
    await asyncio.to_thread(one.close)
    await asyncio.to_thread(other.close)


async def test_what_a_close_cannot_put_is_put_next_time(
    proxied: tuple[str, LoopbackProxy], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="narrator")
    url, proxy = proxied
    store = await asyncio.to_thread(
        Store, tmp_path / "c", objects=await asyncio.to_thread(objects_at, url)
    )
    proxy.cut()
    audio = tone()
    await asyncio.to_thread(store.commit_bytes, KEY, audio)
    store.interrupt()  # a stopping run's close: it does not wait out the outage
    await asyncio.to_thread(store.close)
    assert messages(caplog, "1 segments are not in the object store yet")
    assert (tmp_path / "c" / "segments" / "outbox" / KEY).exists()
    proxy.restore()
    objects = await asyncio.to_thread(objects_at, url)
    assert not await asyncio.to_thread(objects.exists, KEY)
    reopened = await asyncio.to_thread(Store, tmp_path / "c", objects=objects)
    assert reopened._through is not None
    assert await asyncio.to_thread(reopened._through.outbox.drain, 30) == 0
    await asyncio.to_thread(reopened.close)
    got = tmp_path / "got.wav"
    assert await asyncio.to_thread(objects.get, KEY, got) and got.read_bytes() == audio


async def test_a_get_waiting_on_a_closing_store_gives_up(
    proxied: tuple[str, LoopbackProxy], tmp_path: Path
) -> None:
    url, proxy = proxied
    objects = await asyncio.to_thread(objects_at, url)
    store = await asyncio.to_thread(Store, tmp_path / "c", objects=objects)
    proxy.cut()
    looking = asyncio.create_task(asyncio.to_thread(store.lookup, KEY))
    await asyncio.sleep(0.05)
    store.interrupt()  # what a stopping run does once its grace is over
    with pytest.raises(ObjectStoreError, match="out of reach"):
        await looking
    await asyncio.to_thread(store.close)


# --- books under an s3:// DEST ------------------------------------------------------------


def test_a_book_and_its_sidecars_are_uploaded(s3_url: str, tmp_path: Path) -> None:
    book, srt = tmp_path / "Book.m4b", tmp_path / "Book.srt"
    book.write_bytes(b"m4b" * 1000)
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nHi\n")
    dest = s3_url.replace("?", "?", 1)
    written = upload_book([book, srt], dest, "shelf/Book.m4b")
    objects = objects_at(s3_url)
    assert names(objects) == ["shelf/Book.m4b", "shelf/Book.srt"]
    assert written == [
        f"s3://{objects.url.bucket}/{objects.url.prefix}/shelf/Book.{e}" for e in ("m4b", "srt")
    ]
    body = objects._client.get_object(
        Bucket=objects.url.bucket, Key=f"{objects.url.prefix}/shelf/Book.m4b"
    )
    assert (
        hashlib.sha256(body["Body"].read()).digest() == hashlib.sha256(book.read_bytes()).digest()
    )


@pytest.mark.parametrize(
    "name",
    ["../Book.m4b", "shelf/../../Book.m4b", "/etc/Book.m4b", "a//Book.m4b", "./Book.m4b",
     "a\\..\\Book.m4b", "Bo\nok.m4b", "Bo\x1bok.m4b", "", "shelf/.."],
)  # fmt: skip
def test_a_book_name_never_leaves_the_prefix(name: str, tmp_path: Path) -> None:
    book = tmp_path / "Book.m4b"
    book.write_bytes(b"x")
    # Refused before any connection: the endpoint here is nothing.
    with pytest.raises(InputError):
        upload_book([book], "s3://bucket/p?endpoint=http://127.0.0.1:9", name)
    odd = tmp_path / "Bo\x07ok.srt"
    odd.write_bytes(b"x")
    with pytest.raises(InputError):
        upload_book([odd], "s3://bucket/p?endpoint=http://127.0.0.1:9", "Book.m4b")


def _run_settings(emulator: RunningEmulator, cache: Path, url: str) -> Settings:
    return Settings(
        base_url=emulator.url, api_key=TEST_KEY, cache_dir=cache, objects_url=url,
        rpm=6000, concurrency=2, max_chars=60, qa="off",
    )  # fmt: skip


BOOK = " ".join(f"Sentence {i} of a book that waits for its bucket." for i in range(8))


async def _cut_after_first_chunk(
    proxy: LoopbackProxy, run: Callable[[Callable[[ProgressEvent], None]], Awaitable[object]]
) -> asyncio.Task[object]:
    cuts: list[bool] = []

    def progress(event: ProgressEvent) -> None:
        if event.kind == "chunk" and not cuts:
            proxy.cut()
            cuts.append(True)

    task = asyncio.ensure_future(run(progress))
    await until(lambda: bool(cuts))
    return task


async def test_a_run_pauses_for_the_object_store_and_carries_on(
    emulator: RunningEmulator,
    proxied: tuple[str, LoopbackProxy],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="narrator")
    url, proxy = proxied
    settings = _run_settings(emulator, tmp_path / "c", url)
    task = await _cut_after_first_chunk(
        proxy, lambda progress: narrate(BOOK, tmp_path / "b.wav", settings, on_progress=progress)
    )
    await until(lambda: bool(messages(caplog, "waiting for the object store at 127.0.0.1:")))
    assert not task.done()  # paused, not paying for what the bucket may hold
    proxy.restore()
    report = await task
    assert isinstance(report, DocumentReport) and report.status == "done"
    assert emulator.stats.requests == report.chunks  # each chunk paid once
    objects = await asyncio.to_thread(objects_at, url)  # through the proxy, on this loop
    assert len(await asyncio.to_thread(names, objects)) == report.chunks  # nothing lost
    assert not list((tmp_path / "c" / "segments" / "outbox").iterdir())


async def test_a_run_stopped_while_waiting_for_the_object_store_ends(
    emulator: RunningEmulator,
    proxied: tuple[str, LoopbackProxy],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="narrator")
    url, proxy = proxied
    settings = _run_settings(emulator, tmp_path / "c", url)
    stop = asyncio.Event()
    work = Work(parse_text(BOOK), tmp_path / "b.wav")
    task = await _cut_after_first_chunk(
        proxy,
        lambda progress: narrate_many(
            [work], settings, on_progress=progress, stop=stop, grace=0.05
        ),
    )
    await until(lambda: bool(messages(caplog, "waiting for the object store at 127.0.0.1:")))
    stop.set()  # SIGTERM, in a real process
    run = await task
    assert isinstance(run, RunReport) and run.stopped == "interrupted"
    # What was made is in the cache; what was not put (all but what went before the
    # cut) is in the outbox, for next time.
    made = {p.stem for p in (tmp_path / "c" / "segments").glob("??/*.wav")}
    outbox = {p.name for p in (tmp_path / "c" / "segments" / "outbox").iterdir()}
    proxy.restore()
    objects = await asyncio.to_thread(objects_at, url)
    put = {Path(name).stem for name in await asyncio.to_thread(names, objects)}
    assert outbox and outbox <= made and made == outbox | put


def test_an_object_store_keeps_every_book_current() -> None:
    from narrator.run.plan import book_fingerprint

    # Where segments are kept (and how workers pace together) is not what a book is made
    # of: a book made on one machine is current for the workers, and the other way round.
    plain = Settings(provider="espeak")
    shared = Settings(
        provider="espeak",
        objects_url="s3://narrator/x?endpoint=http://h:1",
        store_url="postgresql://u:pw@h:1/db",
        pacing_url="redis://h:1/0",
    )
    assert book_fingerprint("espeak", plain, []) == book_fingerprint("espeak", shared, [])


async def test_a_book_upload_waits_for_the_object_store(
    proxied: tuple[str, LoopbackProxy],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="narrator")
    url, proxy = proxied
    book = tmp_path / "Book.mp3"
    book.write_bytes(b"mp3" * 100)
    with pytest.raises(ObjectStoreError, match="has no bucket narrator-none"):
        await asyncio.to_thread(
            upload_book, [book], url.replace("s3://narrator/", "s3://narrator-none/", 1), "B.mp3"
        )
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(ObjectStoreError, match="refused the credentials"):
        await asyncio.to_thread(upload_book, [book], url, "B.mp3")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    proxy.cut()
    sending = asyncio.create_task(asyncio.to_thread(upload_book, [book], url, "a/Book.mp3"))
    await until(lambda: bool(messages(caplog, "waiting for the object store at 127.0.0.1:")))
    assert not sending.done()
    proxy.restore()
    (written,) = await sending
    assert written.endswith("/a/Book.mp3")
    assert await asyncio.to_thread(names, await asyncio.to_thread(objects_at, url)) == [
        "a/Book.mp3"
    ]
