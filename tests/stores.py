"""The store's two backends, for the store's tests: ``backend`` runs a test once on SQLite
(a file in the test's cache folder) and once on PostgreSQL (a fresh schema of its own on
the shared test server, dropped after the test; see tests/services.py).

A test opens its stores with ``backend.open(root)`` and writes rows by hand (a crafted
store) with ``backend.sql(root, statement, *params)``, in SQLite's dialect: the
PostgreSQL backend translates it as it does the repositories'.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from narrator.store import Store
from narrator.store.db import open_database

from .services import need, unique


@dataclass(frozen=True)
class StoreBackend:
    """Where a test's store keeps its rows: ``url`` None is SQLite in the cache folder."""

    name: str
    url: str | None = None

    def open(self, root: Path) -> Store:
        return Store(root, url=self.url)

    def sql(self, root: Path, statement: str, *params: object) -> list[tuple[Any, ...]]:
        """Run one statement on the store's database, as someone crafting it would."""
        db = open_database(root, self.url)
        try:
            if statement.lstrip().upper().startswith("SELECT"):
                return db.rows(statement, params)
            db.write(statement, params)
            return []
        finally:
            db.close()


def with_schema(url: str, schema: str) -> str:
    """``url`` with its connections' search_path set to ``schema``."""
    option = urllib.parse.quote(f"-csearch_path={schema}")
    return f"{url}{'&' if '?' in url else '?'}options={option}"


@pytest.fixture(scope="session")
def _postgres_admin() -> Iterator[Any]:
    """One connection per test session that makes and drops the tests' schemas."""
    import psycopg

    conn = psycopg.connect(need("NARRATOR_TEST_POSTGRES"), autocommit=True)
    yield conn
    conn.close()


@pytest.fixture
def postgres_schema(request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL of the test server whose connections use a fresh schema of this test's own."""
    base = need("NARRATOR_TEST_POSTGRES")
    admin = request.getfixturevalue("_postgres_admin")
    schema = unique("store_")
    admin.execute(f"CREATE SCHEMA {schema}")
    yield with_schema(base, schema)
    admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> StoreBackend:
    if request.param == "sqlite":
        return StoreBackend("sqlite")
    return StoreBackend("postgresql", request.getfixturevalue("postgres_schema"))
