"""What respelling one document may cost: the bounds on a lexicon, which is data.

A lexicon may be found beside a document in a shared inbox, so its regular expressions
run with a time limit (the ``regex`` package's ``timeout``: ``(a|aa)+$`` on a run of
a's backtracks for ever) and its respellings may grow the spoken text only to the cap
a document's text has (``--max-text-mb``): a 1 MB respelling must not turn a 1 KB
document into 100 M characters. A :class:`Budget` per document holds both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..inputs.limits import DEFAULT_MAX_TEXT_BYTES

__all__ = ["REGEX_SECONDS", "REGEX_SECONDS_PER_MB", "Budget", "finditer"]

# The time a document's regular-expression respellings may take: a real lexicon's
# patterns go over a megabyte of text in well under a second.
REGEX_SECONDS = 1.0
REGEX_SECONDS_PER_MB = 10.0


@dataclass(slots=True)
class Budget:
    """What respelling one document may cost: ``seconds`` of regular-expression matching
    in all (from the first match on, read from ``clock``) and ``max_chars`` characters of
    spoken text. Use one per document (its errors say "this document"). The clock is the
    thread's CPU time, like the ``regex`` package's own timeout: a busy machine does not
    fail a document that only waited for a core."""

    seconds: float = REGEX_SECONDS
    max_chars: int = DEFAULT_MAX_TEXT_BYTES
    clock: Callable[[], float] = time.thread_time
    spoken: int = 0  # characters of spoken text so far
    _began: float | None = None

    @classmethod
    def for_text(cls, chars: int, max_chars: int = DEFAULT_MAX_TEXT_BYTES) -> Budget:
        """The budget of a document of ``chars`` characters."""
        return cls(REGEX_SECONDS + REGEX_SECONDS_PER_MB * chars / 1e6, max_chars)

    def left(self) -> float:
        """Seconds of matching left; :class:`InputError` when none."""
        now = self.clock()
        if self._began is None:
            self._began = now
        left = self.seconds - (now - self._began)
        if left <= 0:
            raise self.too_slow("")
        return left

    def too_slow(self, where: str) -> InputError:
        return InputError(
            f"{where + ': ' if where else ''}the lexicon's patterns took over "
            f"{self.seconds:.1f} s on this document (a pattern that backtracks without end, "
            "like (a|aa)+$?); make it simpler, e.g. possessive (a++) or atomic (?>...)"
        )

    def grow(self, chars: int, where: str) -> None:
        """Count ``chars`` more spoken characters; :class:`InputError` over the cap."""
        self.spoken += chars
        if self.spoken > self.max_chars:
            raise InputError(
                f"{where}: the respellings make this document's spoken text over "
                f"{self.max_chars / 1e6:g} million characters (--max-text-mb); "
                "a respelling that long is not a pronunciation"
            )


def finditer(
    pattern: Any, text: str, budget: Budget, *, bounded: bool, where: str
) -> Iterator[Any]:
    """``pattern``'s (a ``regex`` pattern's) matches in ``text``; ``bounded`` (a user's
    regular expression) within the time the budget has left, else unbounded (a plain
    term's pattern is linear). ``where`` names the entry in the error."""
    if not bounded:
        yield from pattern.finditer(text)
        return
    try:
        yield from pattern.finditer(text, timeout=budget.left())
    except TimeoutError:
        raise budget.too_slow(where) from None
