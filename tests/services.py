"""The real services the several-machines tests use: Redis, PostgreSQL, an S3 server.

``scripts/services.sh up`` starts them on loopback (``make test`` does it first) and writes
their URLs to ``.services/env``; a test reads them from the environment or that file:

    NARRATOR_TEST_REDIS     redis://127.0.0.1:PORT/0
    NARRATOR_TEST_POSTGRES  postgresql://USER@127.0.0.1:PORT/DB
    NARRATOR_TEST_S3        s3://BUCKET/PREFIX?endpoint=http://127.0.0.1:PORT
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY  the S3 server's credentials

Under ``CI`` a test whose service is missing fails (never skips); elsewhere it skips with
the command that starts them. Each test isolates itself with :func:`unique` (a Redis key
prefix, a PostgreSQL schema, an S3 prefix of its own), so tests on several workers and
several checkouts share one set of servers.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ENV_FILE = Path(__file__).resolve().parent.parent / ".services" / "env"
NAMES = ("NARRATOR_TEST_REDIS", "NARRATOR_TEST_POSTGRES", "NARRATOR_TEST_S3")


def service_env() -> dict[str, str]:
    """The services' variables: the environment's, else ``.services/env``'s."""
    found: dict[str, str] = {}
    if ENV_FILE.exists():
        for line in ENV_FILE.read_text().splitlines():
            line = line.strip().removeprefix("export ")
            if "=" in line and not line.startswith("#"):
                name, _, value = line.partition("=")
                found[name.strip()] = value.strip().strip("'\"")
    found.update({k: v for k, v in os.environ.items() if k in found or k in NAMES})
    return found


def need(name: str) -> str:
    """The URL of service ``name``; fails under CI, skips elsewhere, when it is not up."""
    value = service_env().get(name)
    if value:
        return value
    message = f"{name} is not set: run `scripts/services.sh up` (make test does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def unique(prefix: str = "t") -> str:
    """A name no other test uses: a key prefix, a schema, an object prefix."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_url() -> str:
    return need("NARRATOR_TEST_REDIS")


@pytest.fixture
def postgres_url() -> str:
    return need("NARRATOR_TEST_POSTGRES")


@pytest.fixture
def s3_url(monkeypatch: pytest.MonkeyPatch) -> str:
    """An S3 URL with a prefix of this test's own; the credentials are in the environment."""
    url = need("NARRATOR_TEST_S3")
    env = service_env()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        if name in env:
            monkeypatch.setenv(name, env[name])
    base, _, query = url.partition("?")
    return f"{base.rstrip('/')}/{unique()}/" + (f"?{query}" if query else "")
