"""Every error narrator raises on purpose, in one place.

The tree::

    NarratorError                  base class; the CLI prints its message in one line
    ├── ConfigError                bad settings or usage (exit 2)
    ├── InputError                 an input that cannot be read or narrated
    ├── AudioError                 bytes that are not a usable RIFF/WAVE PCM file
    ├── StopRun                    ends the whole run, not just one chunk
    │   ├── AuthError              401: the key was rejected (exit 2)
    │   ├── OutOfCredits           403: the account has no credits left (exit 1)
    │   ├── EndpointNotFound       404 from the API itself: a wrong --base-url (exit 2)
    │   ├── DiskFull               no space left (ENOSPC/EDQUOT) where narrator writes (exit 1)
    │   └── Stalled                no chunk progressed for --stall-timeout seconds (exit 1)
    └── ProviderError              one request failed; ``retryable`` says what the pool does
        ├── BadRequest             400: the service refused this chunk; never retried
        ├── RateLimited            429: retried, and the whole run slows down
        ├── TransientError         5xx, timeouts, dropped connections: retried
        │   └── BadDownload        a truncated or non-WAV download: fetched again
        └── LinkExpired            403/404 on an audio link: synthesized again

Lower-level exceptions (aiohttp, OSError) are translated once, where they happen,
with ``raise ... from exc``.
"""

from __future__ import annotations


class NarratorError(Exception):
    """Base class of every error narrator raises on purpose."""


class ConfigError(NarratorError):
    """The settings or the command line are wrong; the message says how to fix them."""


class InputError(NarratorError):
    """An input cannot be read or has nothing to narrate."""


class AudioError(NarratorError):
    """Bytes that should be a RIFF/WAVE PCM file are not."""


class StopRun(NarratorError):
    """Ends the run: no new requests are started."""


class AuthError(StopRun):
    """The service rejected the API key (401)."""


class OutOfCredits(StopRun):
    """The account ran out of credits (403); the work done so far is kept."""


class EndpointNotFound(StopRun):
    """The API answered 404: the base URL does not point at the service."""


class DiskFull(StopRun):
    """A folder narrator writes to is full; the work done so far is kept.

    ``folder`` is where the write failed (or would fail); ``needed`` the bytes the rest
    of the run needs there, as far as it can be estimated.
    """

    def __init__(self, message: str, *, folder: str, needed: int | None = None) -> None:
        super().__init__(message)
        self.folder = folder
        self.needed = needed


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


class BadRequest(ProviderError):
    """The service refused the chunk itself (400); sending it again cannot help."""


class RateLimited(ProviderError):
    """The service is throttling us (429)."""

    retryable = True


class TransientError(ProviderError):
    """A failure that may pass: 5xx, timeouts, dropped connections."""

    retryable = True


class BadDownload(TransientError):
    """The downloaded audio was cut short or is not WAV; the same link is fetched again."""


class LinkExpired(ProviderError):
    """The signed audio link no longer works (403/404); the chunk must be synthesized again."""

    retryable = True
