"""Every error narrator raises on purpose, in one place.

Each class is named by what its catcher does about it: fix the settings, skip the input,
skip the chunk, retry, or stop the run. The tree::

    NarratorError                  base class; the CLI prints its message in one line (exit 1)
    ├── ConfigError                bad settings or usage: fix them (exit 2)
    │   ├── LexiconError           a lexicon file with bad TOML or a bad entry (names both)
    │   ├── CastError              a cast file that is unreadable, not TOML, too big, or wrong
    │   ├── JobRefused             a job from the queue a worker will not run (says which field)
    │   └── StoreRefused           a cache whose database is not narrator's, or is newer
    ├── StoreFailed                a shared store's database (PostgreSQL) failed for good (also a
    │   │                          sqlite3.DatabaseError: caught where the store's errors are)
    │   └── StoreAway              out of reach as a stopping run closed: no longer waited for
    ├── InputError                 an input that cannot be read or narrated: it is skipped
    ├── AudioError                 bytes that are not a usable RIFF/WAVE PCM file
    ├── AddressRefused             a link or address narrator will not follow (the network
    │                              policy); each stage translates it (an input, a chunk)
    ├── NarrationFailed            a document's audiobook could not be made; ``report`` says why
    ├── QueueUnreachable           the shared queue's Redis did not answer (submit, status)
    ├── ChunkFailed                one chunk gave up (retries ran out, or it was refused): its
    │   │                          document fails, the other chunks go on
    │   └── VoiceFailed            the offline voice (eSpeak NG) could not speak the chunk
    ├── Stopped                    a chunk that never ran because the run was stopping
    ├── StopRun                    ends the whole run, not just one chunk
    │   ├── AuthError              401: the key was rejected (exit 2)
    │   ├── OutOfCredits           403: the account has no credits left (exit 1)
    │   ├── EndpointNotFound       404 from the API itself: a wrong --base-url (exit 2)
    │   ├── Unreachable            the service was never reached: refused, no such host (exit 2)
    │   ├── SettingsRejected       the first request's 400 is not about its text (exit 2)
    │   ├── InternalFailure        an unexpected failure not about one chunk (the store...) (exit 1)
    │   ├── DiskFull               no space left (ENOSPC/EDQUOT) where narrator writes (exit 1)
    │   ├── ObjectStoreError       the object store refused a request, or was given up on (exit 1)
    │   └── Stalled                no chunk progressed for --stall-timeout seconds (exit 1)
    └── ProviderError              one request failed; ``retryable`` says what the pool does
        ├── ChunkRefused           never retried: the chunk fails (a ChunkFailed)
        │   ├── BadRequest         400: the service refused this chunk
        │   ├── AudioTooLarge      the chunk's audio is over the size cap for one segment
        │   └── LinkRefused        the audio link is not one narrator follows (scheme, address)
        ├── RateLimited            429: retried, and the whole run slows down
        ├── TransientError         5xx, timeouts, dropped connections: retried
        │   ├── BadDownload        a truncated or non-WAV download: fetched again
        │   └── ConnectFailed      no connection (refused, DNS): retried once the service answered
        └── LinkExpired            403/404 on an audio link: synthesized again

Lower-level exceptions (aiohttp, OSError) are translated once, where they happen,
with ``raise ... from exc``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import ClassVar, Protocol

__all__ = [
    "AddressRefused",
    "AudioError",
    "AudioTooLarge",
    "AuthError",
    "BadDownload",
    "BadRequest",
    "CastError",
    "ChunkFailed",
    "ChunkRefused",
    "ConfigError",
    "ConnectFailed",
    "DiskFull",
    "EndpointNotFound",
    "InputError",
    "InternalFailure",
    "JobRefused",
    "LexiconError",
    "LinkExpired",
    "LinkRefused",
    "NarrationFailed",
    "NarratorError",
    "ObjectStoreError",
    "OutOfCredits",
    "ProviderError",
    "QueueUnreachable",
    "RateLimited",
    "SettingsRejected",
    "Stalled",
    "StopRun",
    "Stopped",
    "StoreAway",
    "StoreFailed",
    "StoreRefused",
    "TransientError",
    "Unreachable",
    "VoiceFailed",
]


class NarratorError(Exception):
    """Base class of every error narrator raises on purpose.

    ``exit_code`` is what the command exits with when this error ends it (the tree above
    gives each class's; 1 unless it says otherwise): 2 asks the user to fix the settings
    or the command line, 1 says the work stopped and what is finished is kept.
    """

    exit_code: ClassVar[int] = 1


class ConfigError(NarratorError):
    """The settings or the command line are wrong; the message says how to fix them.

    ``setting`` names the :class:`~narrator.settings.Settings` field at fault, as the
    message does; the CLI shows its own flag in its place.
    """

    exit_code = 2

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class CastError(ConfigError):
    """A cast file cannot be read, is over a bound, or has a bad entry; the message names
    the file and the entry."""


class LexiconError(ConfigError):
    """A pronunciation lexicon cannot be read or has a bad entry; the message names the
    file and the line (bad TOML) or the entry."""


class StoreRefused(ConfigError):
    """The cache folder's database is not a narrator store, or was made by a newer
    narrator: refused before anything is sent or paid for, and left as it is."""


class StoreFailed(NarratorError, sqlite3.DatabaseError):
    """A shared store's database (PostgreSQL) failed in a way that waiting for it does not
    cure (a crafted row, a bug). A ``sqlite3.DatabaseError`` too: the store's callers
    catch database errors as SQLite's, and treat this one as they treat those."""


class StoreAway(StoreFailed):
    """A shared store's database was out of reach when a stopping run gave up waiting for
    it: the write was not made (a paid link goes to the cache folder's reserve instead;
    the store's close says in one line what the next run makes up for)."""


class InputError(NarratorError):
    """An input cannot be read or has nothing to narrate."""


class AudioError(NarratorError):
    """Bytes that should be a RIFF/WAVE PCM file are not."""


class AddressRefused(NarratorError):
    """A link or address narrator will not follow; callers translate it for their stage."""


class _FailedDocument(Protocol):
    """What :class:`NarrationFailed` reads of its report (a ``DocumentReport``)."""

    @property
    def input(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def errors(self) -> Sequence[str]: ...


class NarrationFailed(NarratorError):
    """A document could not be narrated; ``report`` (its ``DocumentReport``) says why."""

    def __init__(self, report: _FailedDocument) -> None:
        first = report.errors[0] if report.errors else report.status
        super().__init__(f"{report.input}: {first}")
        self.report = report


class JobRefused(ConfigError):
    """A job from the shared queue a worker will not run: a field it may not set or that
    is wrong, named with why (never retried)."""


class QueueUnreachable(NarratorError):
    """The shared queue's Redis did not answer; the message names it, password masked."""


class ChunkFailed(NarratorError):
    """A chunk gave up: its retries ran out or the service refused it."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class VoiceFailed(ChunkFailed):
    """eSpeak NG could not speak a chunk (or could not start at all); nothing is retried."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message, attempts=attempts)


class Stopped(NarratorError):
    """The pool stopped before this job ran (a fatal error or an interrupt)."""


class StopRun(NarratorError):
    """Ends the run: no new requests are started."""


class AuthError(StopRun):
    """The service rejected the API key (401)."""

    exit_code = 2


class OutOfCredits(StopRun):
    """The account ran out of credits (403); the work done so far is kept."""


class EndpointNotFound(StopRun):
    """The API answered 404: the base URL does not point at the service."""

    exit_code = 2


class Unreachable(StopRun):
    """No connection to the service before it ever answered: nothing is worth retrying."""

    exit_code = 2


class SettingsRejected(StopRun):
    """The service refused the first request for a reason that every request shares
    (the voice, the model): sending the rest would be refused the same way."""

    exit_code = 2


class InternalFailure(StopRun):
    """An unexpected error that is not about one chunk (the store, the disk); the run
    stops with its message rather than hanging or failing chunk after chunk."""


class DiskFull(StopRun):
    """A folder narrator writes to is full; the work done so far is kept.

    ``folder`` is where the write failed (or would fail); ``needed`` the bytes the rest
    of the run needs there, as far as it can be estimated.
    """

    def __init__(self, message: str, *, folder: str, needed: int | None = None) -> None:
        super().__init__(message)
        self.folder = folder
        self.needed = needed


class ObjectStoreError(StopRun):
    """The object store behind the cache (``Settings.objects_url``) refused a request
    (credentials, bucket), or was still out of reach when the run ended; the segments
    are kept in the local cache and put when it is next opened."""


class Stalled(StopRun):
    """No chunk made progress for too long; the message says what the run waited for."""


class ProviderError(NarratorError):
    """One request to a provider failed.

    ``retry_after`` is the delay in seconds the service asked for, if it did.
    """

    retryable = False

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ChunkRefused(ProviderError):
    """This chunk cannot be made; sending it again cannot help, so its chunk fails."""


class BadRequest(ChunkRefused):
    """The service refused the chunk itself (400)."""


class AudioTooLarge(ChunkRefused):
    """The chunk's audio is over the byte cap for one segment."""


class LinkRefused(ChunkRefused):
    """The service's audio link is not one narrator follows: not HTTP(S), or an address
    the network policy refuses (:class:`AddressRefused`)."""


class RateLimited(ProviderError):
    """The service is throttling us (429)."""

    retryable = True


class TransientError(ProviderError):
    """A failure that may pass: 5xx, timeouts, dropped connections."""

    retryable = True


class BadDownload(TransientError):
    """The downloaded audio was cut short or is not WAV; the same link is fetched again."""


class ConnectFailed(TransientError):
    """No connection could be made (refused, unknown host); ``where`` is ``host:port``.

    Retried like any transient error once the service has answered; before that the
    pool stops the run with :class:`Unreachable`, since the address is likely wrong.
    """

    def __init__(self, message: str, *, where: str) -> None:
        super().__init__(message)
        self.where = where


class LinkExpired(ProviderError):
    """The signed audio link no longer works (403/404); the chunk must be synthesized again."""

    retryable = True
