"""SQLite's dialect, as the repositories write it, in PostgreSQL's (store/postgres.py).

The repositories write their SQL once; :func:`translate` rewrites the few words where
PostgreSQL differs (placeholders, ``INSERT OR IGNORE``/``OR REPLACE``, ``GROUP_CONCAT``),
:func:`tables` gives the CREATE statements in its types, and :func:`as_parameters` the
parameters as it takes them. Pure text: psycopg is not imported here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from .db import primary_keys
from .schema import TABLES

__all__ = ["as_parameters", "tables", "translate"]


def translate(sql: str) -> str:
    """A repository's statement (SQLite's dialect) in PostgreSQL's."""
    return _translate(sql)


@functools.lru_cache(maxsize=512)
def _translate(sql: str) -> str:
    text = sql.replace("%", "%%").replace("?", "%s")
    text = text.replace("GROUP_CONCAT(", "STRING_AGG(")
    if ignore := re.match(r"\s*INSERT OR IGNORE INTO ", text):
        text = "INSERT INTO " + text[ignore.end() :] + " ON CONFLICT DO NOTHING"
    elif replace := re.match(r"\s*INSERT OR REPLACE INTO (\w+) \(([^)]*)\)", text):
        table, columns = replace[1], [c.strip() for c in replace[2].split(",")]
        keys = primary_keys()[table]
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys)
        text = (
            f"INSERT INTO {table} ({replace[2]})"
            + text[replace.end() :]
            + f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
        )
    return text


@functools.cache
def tables() -> tuple[str, ...]:
    """The CREATE statements of every table in PostgreSQL's types: SQLite's REAL is a
    double (PostgreSQL's REAL is 4 bytes), INTEGER a 64-bit one (sizes, nanoseconds)."""
    made = []
    for schema in TABLES.values():
        schema = re.sub(r"\bREAL\b", "DOUBLE PRECISION", schema)
        made.append(re.sub(r"\bINTEGER\b", "BIGINT", schema))
    return tuple(made)


def as_parameters(params: Sequence[object]) -> tuple[object, ...]:
    """Parameters as PostgreSQL takes them. Its text holds no NUL: one (the separator in
    a learned rate's voice key) is written U+2400, the same way every time, so equal
    values still match. A path that is not UTF-8 (bytes, which SQLite keeps as a BLOB)
    becomes text with its odd bytes escaped: a book recorded so is not found up to date
    later, and is made again; nothing worse."""
    return tuple(_value(p) for p in params)


def _value(param: object) -> object:
    if isinstance(param, bytes):
        param = param.decode("utf-8", "backslashreplace")
    if isinstance(param, str) and "\0" in param:
        return param.replace("\0", "\u2400")
    return param
