"""Several machines, one queue: ``narrator worker`` processes (real ones, since signals,
kills and several processes are the point), ``narrator submit``, ``status --queue``, and
the jobs a worker refuses, against the real Redis (``redis_url``, a queue name of each
test's own) and the emulator."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from narrator.cluster.jobs import job_data, make_job, parse_job
from narrator.cluster.queue import ACTOR, QUEUE, QueueConfig, masked, states
from narrator.errors import JobRefused
from narrator.inputs.documents import parse_text
from narrator.tools.emulator import EmulatorConfig, RunningEmulator, start_emulator
from narrator.util.s3url import parse_url

from .conftest import TEST_KEY, run_cli
from .faults import PrivateRedis, private_redis
from .services import unique

BOUND = 60.0  # seconds any wait here may take before the test fails
# What a process is not given from this one's environment (the S3 credentials are).
_PROVIDER_KEYS = ("AIMLAPI_KEY", "DASHSCOPE_API_KEY", "OPENAI_API_KEY", "NARRATOR_BASE_URL")


class Proc:
    """A ``narrator`` process and the lines it wrote to stderr."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *args: str) -> Proc:
        # Not the providers' keys (each command gets its own); the S3 credentials stay.
        env = {k: v for k, v in os.environ.items() if k not in _PROVIDER_KEYS}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "narrator", *args, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    async def until(self, pattern: str) -> None:
        async with asyncio.timeout(BOUND):
            while not any(re.search(pattern, line) for line in self.lines):
                if self.proc.returncode is not None:
                    raise AssertionError(f"exited before {pattern!r}:\n" + self.text)
                await asyncio.sleep(0.05)

    async def wait(self) -> int:
        async with asyncio.timeout(BOUND):
            code = await self.proc.wait()
            await self.reader
        return code

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signum)
        return await self.wait()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class Cluster:
    """A queue of the test's own, the emulator, and the workers started on them."""

    def __init__(self, redis_url: str, emulator: RunningEmulator, tmp: Path) -> None:
        self.url = redis_url
        self.name = unique("q")
        self.emulator = emulator
        self.tmp = tmp
        self.root = tmp / "books"
        self.cache = tmp / "cache"  # one store every worker shares (a shared disk)
        self.workers: list[Proc] = []

    @property
    def queue(self) -> list[str]:
        return ["--queue", self.url, "--queue-name", self.name]

    def service(self) -> list[str]:
        return ["--base-url", self.emulator.url, "--api-key", TEST_KEY, "--rpm", "6000",
                "--max-chars", "80"]  # fmt: skip

    async def worker(self, *extra: str) -> Proc:
        proc = await Proc.start(
            "worker", *self.queue, "-o", str(self.root), "--cache-dir", str(self.cache),
            "--heartbeat", "2", *self.service(), *extra,
        )  # fmt: skip
        await proc.until("taking documents")
        self.workers.append(proc)
        return proc

    async def submit(self, inputs: Path, dest: Path | str, *extra: str) -> Proc:
        return await Proc.start(
            "submit", str(inputs), *self.queue, "-o", str(dest), "--max-chars", "80",
            "--quiet", *extra,
        )  # fmt: skip

    def states(self) -> list:
        config = QueueConfig(self.url, name=self.name)
        client = config.client()
        try:
            return states(client, config)
        finally:
            client.close()

    async def until_state(self, check, what: str) -> list:
        async with asyncio.timeout(BOUND):
            while True:
                try:
                    found = await asyncio.to_thread(self.states)
                except redis.RedisError:  # a server restarting (or still loading its data)
                    await asyncio.sleep(0.1)
                    continue
                if check(found):
                    return found
                await asyncio.sleep(0.1)

    async def close(self) -> None:
        for proc in self.workers:
            if proc.proc.returncode is None:
                proc.proc.kill()
                await proc.proc.wait()


@pytest.fixture
async def cluster(
    redis_url: str, emulator: RunningEmulator, tmp_path: Path
) -> AsyncIterator[Cluster]:
    made = Cluster(redis_url, emulator, tmp_path)
    try:
        yield made
    finally:
        await made.close()


def _folder(root: Path, count: int, paragraphs: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        body = "\n\n".join(
            f"Paragraph {p} of document {n}. It says something short, and then a little more."
            for p in range(paragraphs)
        )
        (root / f"doc{n:02}.md").write_text(f"# Document {n}\n\n{body}\n", encoding="utf-8")
    return root


def _books(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.wav"))}


# --- the whole way, three workers ------------------------------------------------------


async def test_three_workers_make_the_books_one_machine_makes_each_chunk_billed_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    inputs = _folder(tmp_path / "in", 8)
    for _ in range(3):
        await cluster.worker()
    submit = await cluster.submit(inputs, cluster.root / "run", "--wait")
    assert await submit.wait() == 0, submit.text
    assert "8 documents done, 0 failed" in submit.text
    ids = re.findall(r"^([0-9a-f]{32})  ", submit.text, re.M)
    assert len(ids) == 8
    billed = dict(cluster.emulator.stats.billed)
    assert billed and set(billed.values()) == {1}, billed  # each chunk paid once
    # The same folder narrated on one machine, with a store of its own.
    local = await run_cli(
        "narrate", str(inputs), "-o", str(tmp_path / "local"), "--cache-dir",
        str(tmp_path / "own-cache"), "--quiet", *cluster.service(),
    )  # fmt: skip
    assert local.code == 0, local.stderr
    assert _books(cluster.root / "run") == _books(tmp_path / "local")
    status = await run_cli("status", *cluster.queue, "--json")
    data = json.loads(status.stdout)
    assert sorted(d["state"] for d in data["documents"]) == ["done"] * 8
    assert TEST_KEY not in status.stdout


async def test_two_submits_of_one_folder_bill_each_chunk_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    inputs = _folder(tmp_path / "in", 3)
    for _ in range(2):
        await cluster.worker()
    first = await cluster.submit(inputs, cluster.root / "a", "--wait")
    second = await cluster.submit(inputs, cluster.root / "b", "--wait")
    assert await first.wait() == 0, first.text
    assert await second.wait() == 0, second.text
    assert set(cluster.emulator.stats.billed.values()) == {1}
    assert _books(cluster.root / "a") == _books(cluster.root / "b")


# --- faults ----------------------------------------------------------------------------


async def _half_way(cluster: Cluster) -> None:
    await cluster.until_state(
        lambda found: any(s.state == "running" and 0 < s.done < s.chunks * 3 // 4 for s in found),
        "half-way",
    )


async def test_a_killed_worker_s_book_is_finished_by_another_rebilled_at_most_its_in_flight(
    redis_url: str, slow_emulator: RunningEmulator, tmp_path: Path
) -> None:
    cluster = Cluster(redis_url, slow_emulator, tmp_path)
    try:
        inputs = _folder(tmp_path / "in", 1, paragraphs=24)
        doomed = await cluster.worker("--concurrency", "2")
        submit = await cluster.submit(inputs, cluster.root / "run")
        assert await submit.wait() == 0, submit.text
        await _half_way(cluster)
        doomed.proc.kill()  # kill -9: no goodbye, its message is still unacknowledged
        await doomed.wait()
        await cluster.worker("--concurrency", "2")
        found = await cluster.until_state(lambda f: f and all(s.final for s in f), "done")
        assert [s.state for s in found] == ["done"], found
        billed = slow_emulator.stats.billed
        # Paid twice at most: what it had in flight, requests (2) and the downloads of
        # answers already billed (the pool keeps up to twice --concurrency jobs going).
        assert sum(n - 1 for n in billed.values()) <= 4
        assert (cluster.root / "run" / "doc00.wav").stat().st_size > 0
    finally:
        await cluster.close()


async def test_sigterm_hands_the_book_back_exit_0_and_another_finishes_it(
    redis_url: str, slow_emulator: RunningEmulator, tmp_path: Path
) -> None:
    cluster = Cluster(redis_url, slow_emulator, tmp_path)
    try:
        inputs = _folder(tmp_path / "in", 1, paragraphs=60)
        leaving = await cluster.worker("--concurrency", "2")
        submit = await cluster.submit(inputs, cluster.root / "run")
        assert await submit.wait() == 0, submit.text
        await _half_way(cluster)
        assert await leaving.stop(signal.SIGTERM) == 0, leaving.text
        assert "handed back to the queue" in leaving.text
        (state,) = await asyncio.to_thread(cluster.states)
        assert state.state == "queued" and state.tries == 1  # not a failed try
        await cluster.worker("--concurrency", "2")
        found = await cluster.until_state(lambda f: f and all(s.final for s in f), "done")
        assert [(s.state, s.tries) for s in found] == [("done", 1)]
        assert set(slow_emulator.stats.billed.values()) == {1}  # its requests finished
    finally:
        await cluster.close()


async def test_a_document_that_always_fails_is_failed_with_why_after_its_tries(
    redis_url: str, tmp_path: Path
) -> None:
    refusing = await start_emulator(
        EmulatorConfig(api_key=TEST_KEY, engine="tone", max_characters=20)
    )
    cluster = Cluster(redis_url, refusing, tmp_path)
    try:
        inputs = _folder(tmp_path / "in", 1)
        await cluster.worker("--tries", "2", "--retries", "1")
        submit = await cluster.submit(inputs, cluster.root / "run", "--wait")
        assert await submit.wait() == 1, submit.text
        (state,) = await asyncio.to_thread(cluster.states)
        assert state.state == "failed" and state.tries == 2, state
        assert state.error
        assert re.search(r"failed: .*doc00", submit.text)
        assert "0 failed" not in submit.text
    finally:
        await cluster.close()
        await refusing.close()


async def test_restarting_redis_mid_run_loses_no_job(
    slow_emulator: RunningEmulator, tmp_path: Path
) -> None:
    with private_redis(tmp_path) as server:
        await _restarted_mid_run(server, slow_emulator, tmp_path)


async def _restarted_mid_run(
    server: PrivateRedis, emulator: RunningEmulator, tmp_path: Path
) -> None:
    cluster = Cluster(server.url, emulator, tmp_path)
    try:
        inputs = _folder(tmp_path / "in", 4, paragraphs=6)
        await cluster.worker("--documents", "1")
        submit = await cluster.submit(inputs, cluster.root / "run")
        assert await submit.wait() == 0, submit.text
        before = await cluster.until_state(lambda f: any(s.state == "done" for s in f), "one done")
        assert not all(s.final for s in before)  # the restart comes mid-run
        await asyncio.to_thread(server.restart)  # as an operator does: written out, started
        found = await cluster.until_state(
            lambda f: len(f) == 4 and all(s.final for s in f), "all done"
        )
        assert [s.state for s in found] == ["done"] * 4
        assert len(_books(cluster.root / "run")) == 4
        said = cluster.workers[0].text
        assert said.count("is unreachable") <= 1 and "Consumer encountered" not in said
    finally:
        await cluster.close()


# --- forged jobs -------------------------------------------------------------------------


def _job(**changes: object) -> dict:
    data = job_data(
        make_job(
            parse_text("# T\n\nHello there."),
            name="a.md",
            dest="/books/run",
            output="a.wav",
            options={"voice": "Cherry"},
        )
    )
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"output": "../../etc/passwd.wav"}, "output"),
        ({"output": "/etc/x.wav"}, "output"),
        ({"output": "a/../../x.wav"}, "output"),
        ({"output": "notes.txt"}, "extension"),
        ({"base_url": "http://evil.example"}, "base_url"),
        ({"api_key": "sk-1234567890"}, "api_key"),
        ({"options": {"base_url": "http://evil.example"}}, "options.base_url"),
        ({"options": {"max_cost": 1000}}, "options.max_cost"),
        ({"options": {"lexicon": ["/etc/passwd"]}}, "options.lexicon"),
        ({"options": {"audiobook": {"cover": "/etc/passwd"}}}, "options.audiobook.cover"),
        ({"options": {"gap_ms": "300"}}, "wrong type"),
        ({"v": 2}, "schema"),
        ({"id": "../x"}, "id"),
    ],
)
def test_a_forged_job_is_refused_saying_why(changes: dict, why: str) -> None:
    with pytest.raises(JobRefused, match=re.escape(why)):
        parse_job(_job(**changes), max_text_bytes=1000)


def test_a_job_over_the_worker_s_text_limit_is_refused() -> None:
    with pytest.raises(JobRefused, match="max-text-mb"):
        parse_job(_job(), max_text_bytes=5)


def test_a_job_is_checked_and_names_no_file_on_the_worker() -> None:
    job = parse_job(_job(), max_text_bytes=1000)
    assert job.document.source.startswith("<")  # no lexicon or cast looked for beside it
    assert job.options == {"voice": "Cherry"}


async def test_a_worker_refuses_forged_jobs_and_writes_nothing_outside_dest(
    cluster: Cluster, tmp_path: Path
) -> None:
    from dramatiq.message import Message

    await cluster.worker()
    outside = tmp_path / "outside"
    forged = {
        "traversal": _job(dest=str(cluster.root / "run"), output="../../outside/x.wav"),
        "other-root": _job(dest=str(outside), output="x.wav"),
        "key": {**_job(dest=str(cluster.root / "run")), "api_key": "sk-forged-0123456789"},
        "endpoint": _job(
            dest=str(cluster.root / "run"), options={"base_url": "http://127.0.0.1:9/"}
        ),
    }
    config = QueueConfig(cluster.url, name=cluster.name)
    broker = config.broker()
    try:
        for data in forged.values():
            broker.client.hset(config.job_key(data["id"]), "state", "queued")
            broker.client.zadd(config.index_key, {data["id"]: time.time()})
            broker.enqueue(Message(queue_name=QUEUE, actor_name=ACTOR, args=(data,),
                                   kwargs={}, options={}))  # fmt: skip
    finally:
        broker.close()
    found = await cluster.until_state(
        lambda f: len(f) == 4 and all(s.final for s in f), "all refused"
    )
    assert all(s.state == "failed" and "refused" in s.error for s in found), found
    assert not outside.exists()
    assert cluster.emulator.stats.requests == 0
    status = await run_cli("status", *cluster.queue)
    assert "not a plain relative path below DEST" in status.stdout
    assert "not inside this worker's -o" in status.stdout
    assert "unknown field" in status.stdout
    assert "sk-forged" not in status.stdout + cluster.workers[0].text


def test_a_password_in_the_queue_url_is_never_shown() -> None:
    shown = QueueConfig("redis://user:s3cret@host:6379/0").shown
    assert "s3cret" not in shown and "host:6379" in shown
    assert masked("redis://:pw@h:1/0") == "redis://***@h:1/0"


async def test_a_forged_queue_state_is_shown_escaped_and_bounded(cluster: Cluster) -> None:
    # Whoever can write to the queue's Redis can write a state: it is data for status.
    config = QueueConfig(cluster.url, name=cluster.name)
    client = config.client()
    try:
        job_id = "f" * 32
        client.hset(config.job_key(job_id), mapping={
            "state": "pwned\x1b[2J", "name": "doc\x1b]0;title\x07.md", "output": "o\x1b[31m.wav",
            "worker": "host\r:1", "error": "why\x1b[1A", "chunks": "1e999", "done": "-5",
            "tries": "x", "updated": "nan",
        })  # fmt: skip
        client.zadd(config.index_key, {job_id: time.time()})
    finally:
        client.close()
    status = await run_cli("status", *cluster.queue)
    as_json = await run_cli("status", *cluster.queue, "--json")
    assert status.code == 0 and as_json.code == 0, status.stderr + as_json.stderr
    for result in (status, as_json):
        assert (
            "\x1b" not in result.stdout
            and "\r" not in result.stdout
            and "\x07" not in result.stdout
        )
    assert "unknown" in status.stdout  # a state narrator does not know is not echoed
    [shown] = json.loads(as_json.stdout)["documents"]
    assert shown["state"] == "unknown" and shown["chunks"] == 0


async def test_submit_refuses_a_file_a_worker_would_have_to_read(tmp_path: Path) -> None:
    inputs = _folder(tmp_path / "in", 1)
    result = await run_cli(
        "submit", str(inputs), "--queue", "redis://127.0.0.1:1/0", "-o", str(tmp_path / "o"),
        "--cover", str(tmp_path / "c.jpg"),
    )  # fmt: skip
    assert result.code == 2 and "--cover" in result.stderr


async def test_watch_with_a_queue_submits_and_reports_the_books_the_workers_make(
    cluster: Cluster, tmp_path: Path
) -> None:
    inbox = _folder(tmp_path / "inbox", 1)
    await cluster.worker()
    watcher = await Proc.start(
        "watch", str(inbox), "-o", str(cluster.root / "feed"), *cluster.queue,
        "--cache-dir", str(cluster.cache), "--settle", "0.3", "--max-chars", "80", "--quiet",
    )  # fmt: skip
    try:
        await watcher.until(r"done: .*doc00\.md")
        (inbox / "late.md").write_text("# Late\n\nIt came in later.\n", encoding="utf-8")
        await watcher.until(r"done: .*late\.md")
    finally:
        assert await watcher.stop() == 0, watcher.text
    assert sorted(_books(cluster.root / "feed")) == ["doc00.wav", "late.wav"]
    assert set(cluster.emulator.stats.billed.values()) == {1}
    assert "sending the API key" not in watcher.text  # the watcher holds no key


async def test_books_go_to_object_storage_below_the_worker_s_own_prefix(
    cluster: Cluster, s3_url: str, tmp_path: Path
) -> None:
    import boto3

    inputs = _folder(tmp_path / "in", 2)
    base = s3_url.partition("?")[0]
    await cluster.worker("-o", s3_url)
    dest = base.rstrip("/") + "/run"  # no endpoint: the worker's own is used
    submit = await cluster.submit(inputs, dest, "--wait")
    assert await submit.wait() == 0, submit.text
    url = parse_url(s3_url)
    client = boto3.client("s3", endpoint_url=url.endpoint, region_name="us-east-1")
    listed = client.list_objects_v2(Bucket=url.bucket, Prefix=f"{url.prefix}/run/")
    names = sorted(o["Key"].rsplit("/", 1)[1] for o in listed.get("Contents", []))
    assert names == ["doc00.wav", "doc01.wav"]
    assert not list((cluster.cache / "cluster-books").rglob("*.wav"))  # staging cleaned up
    # A job naming another prefix (or an endpoint of its own) is refused.
    other = await cluster.submit(inputs, f"s3://{url.bucket}/elsewhere", "--wait")
    assert await other.wait() == 1
    assert "not inside this worker's -o" in other.text


async def test_status_shows_the_account_s_shared_pace(cluster: Cluster, tmp_path: Path) -> None:
    await cluster.worker()
    submit = await cluster.submit(_folder(tmp_path / "in", 1), cluster.root / "run", "--wait")
    assert await submit.wait() == 0, submit.text
    status = await run_cli("status", *cluster.queue)
    assert re.search(r"^pace: account [0-9a-f]+: 6000 rpm now", status.stdout, re.M), status.stdout
    data = json.loads((await run_cli("status", *cluster.queue, "--json")).stdout)
    assert any(p["rpm"] == 6000 for p in data["pace"])
    assert TEST_KEY not in status.stdout


async def test_an_unreachable_queue_is_one_line_its_password_masked(tmp_path: Path) -> None:
    url = "redis://:s3cret-pw@127.0.0.1:1/0"  # nothing listens on port 1
    submit = await run_cli(
        "submit", str(_folder(tmp_path / "in", 1)), "--queue", url, "-o", str(tmp_path / "o")
    )
    status = await run_cli("status", "--queue", url)
    for result in (submit, status):
        assert result.code == 1
        assert "is unreachable" in result.stderr and "redis://***@127.0.0.1:1/0" in result.stderr
        assert "s3cret" not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
    assert "nothing submitted" in submit.stderr


async def test_service_urls_come_from_the_environment_and_a_missing_queue_is_named(
    tmp_path: Path,
) -> None:
    inputs, out = _folder(tmp_path / "in", 1), str(tmp_path / "o")
    # $NARRATOR_QUEUE stands in for --queue, so a password stays out of `ps`.
    url = "redis://:s3cret-pw@127.0.0.1:1/0"  # nothing listens on port 1
    submit = await run_cli("submit", str(inputs), "-o", out, env={"NARRATOR_QUEUE": url})
    assert submit.code == 1 and "redis://***@127.0.0.1:1/0" in submit.stderr, submit.stderr
    for command in (["submit", str(inputs)], ["worker"]):
        result = await run_cli(*command, "-o", out, env={"NARRATOR_QUEUE": ""})
        assert result.code == 2, result.stderr
        assert "needs the queue: --queue redis://HOST:PORT/DB, or $NARRATOR_QUEUE" in result.stderr


def test_a_report_s_command_masks_a_service_url_s_password() -> None:
    from narrator.cli.build import report_command
    from narrator.settings import Settings

    argv = [
        "watch",
        "in",
        "--queue",
        "redis://:pw-one@h:6379/0",
        "--store=postgresql://u:pw-two@db/n",
    ]
    line = report_command(argv, Settings(api_key="k" * 12))
    assert "pw-one" not in line and "pw-two" not in line
    assert "redis://:***@h:6379/0" in line and "--store=postgresql://u:***@db/n" in line


async def test_a_document_its_workers_keep_dying_on_is_failed_not_looped(
    cluster: Cluster, tmp_path: Path
) -> None:
    submit = await cluster.submit(_folder(tmp_path / "in", 1), cluster.root / "run")
    assert await submit.wait() == 0, submit.text
    (job_id,) = re.findall(r"^([0-9a-f]{32})  ", submit.text, re.M)
    config = QueueConfig(cluster.url, name=cluster.name)
    client = config.client()
    try:  # as if workers had taken it and died six times (--tries 3, plus three)
        client.hset(config.job_key(job_id), "starts", 6)
    finally:
        client.close()
    await cluster.worker()
    (state,) = await cluster.until_state(lambda f: f and f[0].final, "failed")
    assert state.state == "failed" and "given up after 6 starts" in state.error
    assert cluster.emulator.stats.requests == 0


async def test_workers_on_the_shared_postgresql_store_bill_each_chunk_once(
    cluster: Cluster, postgres_schema: str, tmp_path: Path
) -> None:
    inputs = _folder(tmp_path / "in", 4)
    for _ in range(2):
        await cluster.worker("--store", postgres_schema)
    submit = await cluster.submit(inputs, cluster.root / "run", "--wait")
    assert await submit.wait() == 0, submit.text
    again = await cluster.submit(inputs, cluster.root / "again", "--wait")
    assert await again.wait() == 0, again.text
    assert set(cluster.emulator.stats.billed.values()) == {1}
    assert _books(cluster.root / "run") == _books(cluster.root / "again")
