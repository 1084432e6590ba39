"""Finding inputs and reading them into documents: files, folders, standard input, URLs.

:func:`find_inputs` expands what the user named (folders recursively, hidden files and
folders skipped, ``include``/``exclude`` globs) into :class:`Input` s;
:func:`read_inputs` reads them all, fetching URLs concurrently with aiohttp (with a
timeout and a size cap), and gives back a document or an :class:`InputError` for each,
so one unreadable input never stops the others.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import aiohttp

from .._version import __version__
from ..errors import AddressRefused, ConfigError, InputError
from ..util import netpolicy
from ..util.netpolicy import NetPolicy
from ..util.sanitize import text_name
from .documents import Document, decode, kind_of, parse_bytes, parse_text
from .limits import DEFAULT_MAX_TEXT_BYTES, check_text_size

__all__ = [
    "DEFAULT_SUFFIXES",
    "STDIN",
    "Input",
    "fetch",
    "find_inputs",
    "is_url",
    "read_inputs",
    "safe_filename",
]


log = logging.getLogger("narrator")
DEFAULT_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".epub")
STDIN = "-"
_CONTENT_KINDS = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/plain": "text",
    "application/epub+zip": "epub",
}
_FETCH_CONCURRENCY = 4  # pages fetched at once; polite to the sites, quick enough


@dataclass(frozen=True, slots=True)
class Input:
    """One thing to read: a file, standard input (``-``) or an http(s) URL.

    ``relative`` is where its audiobook goes under an output folder, without suffix;
    None for a URL, which is named after its title once it is read.
    """

    location: str
    relative: Path | None
    # (device, inode) of a folder's entry when it was listed: the file read must be that
    # one, not a link swapped in since (see load_document's ``expect``).
    identity: tuple[int, int] | None = None

    @property
    def is_url(self) -> bool:
        return is_url(self.location)


def is_url(text: str) -> bool:
    """True for an http:// or https:// address."""
    return text.lower().startswith(("http://", "https://"))


def _matches(relative: PurePosixPath, patterns: Sequence[str]) -> bool:
    # A pattern with a slash is matched against the path below the folder, one without
    # against the file name, as .gitignore does.
    return any(
        fnmatch.fnmatch(relative.as_posix() if "/" in p else relative.name, p) for p in patterns
    )


def find_inputs(
    inputs: Sequence[str],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    follow_symlinks: bool = False,
) -> tuple[list[Input], bool]:
    """Expand files, folders, ``-`` and URLs into inputs, in the order given.

    A folder contributes every file below it whose suffix is one of
    :data:`DEFAULT_SUFFIXES` (or that matches an ``include`` glob, when any is given),
    minus those matching an ``exclude`` glob; hidden files and folders are skipped, and
    so (with a warning) is a symbolic link that leads out of the folder, unless
    ``follow_symlinks``: a shared folder must not make narrator read ``/etc/passwd``.
    The flag is True when the inputs make several documents (a folder or many inputs).
    Raises :class:`ConfigError` for a path that does not exist.
    """
    found: list[Input] = []
    many = len(inputs) > 1
    for raw in inputs:
        if raw == STDIN:
            found.append(Input(STDIN, Path("stdin")))
            continue
        if is_url(raw):
            found.append(Input(raw, None))
            continue
        path = Path(raw)
        if path.is_dir():
            many = True
            for file in sorted(path.rglob("*")):
                rel = PurePosixPath(file.relative_to(path).as_posix())
                if any(part.startswith(".") for part in rel.parts) or not file.is_file():
                    continue
                wanted = (
                    _matches(rel, include) if include else file.suffix.lower() in DEFAULT_SUFFIXES
                )
                if not wanted or _matches(rel, exclude):
                    continue
                if not follow_symlinks and not file.resolve().is_relative_to(path.resolve()):
                    log.warning(
                        "skipped %s: a link to %s, outside %s (--follow-symlinks reads it)",
                        file, file.resolve(), raw,
                    )  # fmt: skip
                    continue
                # The audiobook's name is text even when the input's is not UTF-8.
                try:
                    listed = file.stat()
                except OSError:  # gone since it was listed: nothing to read
                    continue
                found.append(
                    Input(
                        str(file),
                        Path(text_name(str(rel))).with_suffix(""),  # text even if the name is not
                        (listed.st_dev, listed.st_ino),
                    )
                )
        elif path.is_file():
            found.append(Input(raw, Path(text_name(path.stem))))
        else:
            raise ConfigError(f"{raw}: no such file or folder")
    return found, many


_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_MAX_NAME_BYTES = 120  # room for a suffix and "-2" under every filesystem's 255


def safe_filename(title: str) -> str:
    """A file name (without suffix) made from a title, valid on any common filesystem."""
    name = unicodedata.normalize("NFC", title)
    name = _UNSAFE.sub(" ", name)
    name = " ".join(name.split()).strip(" .")
    while len(name.encode()) > _MAX_NAME_BYTES:
        name = name[:-1]
    name = name.rstrip(" .")
    if not name:
        return "untitled"
    if _RESERVED.match(name):
        name = f"_{name}"
    return name


async def fetch(
    session: aiohttp.ClientSession, url: str, *, max_bytes: int, policy: NetPolicy | None = None
) -> tuple[bytes, str | None]:
    """The body of ``url`` and its content type; :class:`InputError` when it cannot be had.

    The session carries the timeout; a body over ``max_bytes`` is refused, whether its
    size is announced or not. ``url`` and every redirect must pass ``policy`` (by
    default: public addresses only, see :mod:`narrator.util.netpolicy`).
    """
    headers = {
        "User-Agent": f"narrator/{__version__} (+audiobook maker)",
        "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5",
    }
    limit = f"larger than {max_bytes / 1e6:g} MB (see --max-page-mb)"
    try:
        async with netpolicy.get(
            session, url, policy=policy or NetPolicy(), headers=headers
        ) as response:
            if response.status >= 400:
                raise InputError(f"{url}: HTTP {response.status} {response.reason or ''}".strip())
            if response.content_length is not None and response.content_length > max_bytes:
                raise InputError(f"{url}: {limit}")
            body = bytearray()
            async for block in response.content.iter_chunked(64 * 1024):
                body += block
                if len(body) > max_bytes:
                    raise InputError(f"{url}: {limit}")
            return bytes(body), response.content_type
    except AddressRefused as exc:
        raise InputError(f"{url}: {exc}") from exc
    except TimeoutError as exc:
        raise InputError(f"{url}: no complete answer within the timeout") from exc
    except aiohttp.InvalidURL as exc:
        raise InputError(f"{url}: not a valid URL") from exc
    except aiohttp.ClientError as exc:
        raise InputError(f"{url}: {exc or type(exc).__name__}") from exc


async def _read_url(
    session: aiohttp.ClientSession,
    gate: asyncio.Semaphore,
    url: str,
    *,
    max_bytes: int,
    max_text_bytes: int,
    policy: NetPolicy | None,
) -> Document:
    async with gate:
        body, content_type = await fetch(session, url, max_bytes=max_bytes, policy=policy)
    kind = _CONTENT_KINDS.get((content_type or "").lower())
    if kind is None:
        path_kind = kind_of(url.partition("?")[0])
        if content_type in (None, "application/octet-stream") and path_kind != "text":
            kind = path_kind
        else:
            raise InputError(f"{url}: cannot narrate a {content_type} page")
    # Parsing a big page takes a while; keep the other downloads going meanwhile.
    return await asyncio.to_thread(
        parse_bytes, body, kind=kind, source=url, max_text_bytes=max_text_bytes
    )


def _read_file(item: Input, stdin: bytes | None, max_text_bytes: int) -> Document:
    from .documents import load_document

    if item.location == STDIN:
        if stdin is None:
            raise InputError("-: standard input is not available")
        check_text_size(len(stdin), source="standard input", max_text_bytes=max_text_bytes)
        return parse_text(decode(stdin, name="standard input"), title="stdin", source=STDIN)
    return load_document(Path(item.location), max_text_bytes=max_text_bytes, expect=item.identity)


async def read_inputs(
    items: Sequence[Input],
    *,
    stdin: bytes | None = None,
    timeout: float = 30.0,
    max_bytes: int = 20_000_000,
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
    policy: NetPolicy | None = None,
) -> list[Document | InputError]:
    """Read every input; each gives its document, or the :class:`InputError` that stopped it.

    ``stdin`` is what standard input held (the caller reads it); URLs are fetched a few
    at a time, each within ``timeout`` seconds and ``max_bytes`` bytes, from the
    addresses ``policy`` allows (default: public ones). No document may hold more than
    ``max_text_bytes`` of text (:mod:`narrator.inputs.limits`).
    """
    results: list[Document | InputError] = []
    urls: dict[int, str] = {}
    for index, item in enumerate(items):
        if item.is_url:
            urls[index] = item.location
            results.append(InputError("not fetched"))
            continue
        try:
            results.append(await asyncio.to_thread(_read_file, item, stdin, max_text_bytes))
        except InputError as exc:
            results.append(exc)
    if urls:
        gate = asyncio.Semaphore(_FETCH_CONCURRENCY)
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            fetched = await asyncio.gather(
                *(
                    _read_url(
                        session,
                        gate,
                        url,
                        max_bytes=max_bytes,
                        max_text_bytes=max_text_bytes,
                        policy=policy,
                    )
                    for url in urls.values()
                ),
                return_exceptions=True,
            )
        for index, outcome in zip(urls, fetched, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, InputError):
                raise outcome  # a bug, not a bad page: let it show
            results[index] = outcome
    return results
