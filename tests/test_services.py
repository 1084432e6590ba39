"""The services ``scripts/services.sh up`` starts answer, each the way narrator will use it.

Every test keeps to a name of its own (a Redis key prefix, a PostgreSQL schema, an S3
prefix), so it can run against any shared set of servers.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import psycopg
import pytest
import redis
from psycopg import sql

from tests.services import ENV_FILE, NAMES, unique

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "services.sh"


def test_redis_set_get_under_a_prefix_of_its_own(redis_url: str) -> None:
    prefix = unique("test-services:")
    client = redis.Redis.from_url(redis_url)
    try:
        client.set(f"{prefix}:a", b"\x00one", ex=60)
        client.rpush(f"{prefix}:list", "x", "y")
        assert client.get(f"{prefix}:a") == b"\x00one"
        assert client.lrange(f"{prefix}:list", 0, -1) == [b"x", b"y"]
        assert client.delete(f"{prefix}:a", f"{prefix}:list") == 2
        assert client.get(f"{prefix}:a") is None
    finally:
        client.close()


def test_postgres_query_in_a_fresh_schema(postgres_url: str) -> None:
    schema = unique("test_services_")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            table = sql.Identifier(schema, "segments")
            conn.execute(sql.SQL("CREATE TABLE {} (key text PRIMARY KEY, n int)").format(table))
            conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s), (%s, %s)").format(table),
                         ("a", 1, "b", 2))  # fmt: skip
            rows = conn.execute(sql.SQL("SELECT key, n FROM {} ORDER BY key").format(table))
            assert rows.fetchall() == [("a", 1), ("b", 2)]
            # The store's claims rely on this: a second insert of a key is refused.
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(table), ("a", 3))
        finally:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_s3_put_get_delete_under_the_tests_prefix(s3_url: str) -> None:
    parts = urlsplit(s3_url)
    (endpoint,) = parse_qs(parts.query)["endpoint"]
    bucket, prefix = parts.netloc, parts.path.lstrip("/")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    )
    try:
        key = f"{prefix}ab/abcdef.wav"
        body = bytes(range(256)) * 64
        client.put_object(Bucket=bucket, Key=key, Body=body)
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        assert [o["Key"] for o in listed["Contents"]] == [key]
        client.delete_object(Bucket=bucket, Key=key)
        assert client.list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] == 0
    finally:
        client.close()


def test_env_names_the_services_the_fixtures_read() -> None:
    """``scripts/services.sh env`` prints exactly the lines tests/services.py reads."""
    if not ENV_FILE.exists():
        pytest.skip("no .services/env: run scripts/services.sh up (make test does)")
    out = subprocess.run([SCRIPT, "env"], capture_output=True, text=True, check=True).stdout
    names = [line.removeprefix("export ").partition("=")[0] for line in out.splitlines()]
    assert names == [*NAMES, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    assert all(line.startswith("export ") for line in out.splitlines())


def test_a_wrong_command_is_one_line_of_usage() -> None:
    done = subprocess.run([SCRIPT, "start"], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr == "services: usage: scripts/services.sh up|down|env\n"
