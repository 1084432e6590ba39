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
    │   ├── Unreachable            the service was never reached: refused, no such host (exit 2)
    │   ├── SettingsRejected       the first request's 400 is not about its text (exit 2)
    │   ├── InternalFailure        an unexpected failure not about one chunk (the store...) (exit 1)
    │   ├── DiskFull               no space left (ENOSPC/EDQUOT) where narrator writes (exit 1)
    │   └── Stalled                no chunk progressed for --stall-timeout seconds (exit 1)
    └── ProviderError              one request failed; ``retryable`` says what the pool does
        ├── BadRequest             400: the service refused this chunk; never retried
        ├── RateLimited            429: retried, and the whole run slows down
        ├── TransientError         5xx, timeouts, dropped connections: retried
        │   ├── BadDownload        a truncated or non-WAV download: fetched again
        │   └── ConnectFailed      no connection (refused, DNS): retried once the service answered
        └── LinkExpired            403/404 on an audio link: synthesized again

Lower-level exceptions (aiohttp, OSError) are translated once, where they happen,
with ``raise ... from exc``.
"""

from __future__ import annotations


class NarratorError(Exception):
    """Base class of every error narrator raises on purpose."""


class ConfigError(NarratorError):
    """The settings or the command line are wrong; the message says how to fix them.

    ``setting`` names the :class:`~narrator.settings.Settings` field at fault, as the
    message does; the CLI shows its own flag in its place.
    """

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


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


class Unreachable(StopRun):
    """No connection to the service before it ever answered: nothing is worth retrying."""


class SettingsRejected(StopRun):
    """The service refused the first request for a reason that every request shares
    (the voice, the model): sending the rest would be refused the same way."""


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
