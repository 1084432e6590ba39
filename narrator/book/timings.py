"""Where each sentence starts inside a chunk's audio: at the pauses the voice made.

A chunk's own start in the book is exact (segment lengths and gaps). Inside it, the
voice read several sentences in one go, and nobody says where one ends. It pauses
there, though: a sentence end is the longest silence a reader makes, bar a paragraph.
So the book's samples are read as they are written (:class:`LevelTap`: one peak per
10 ms), the silences inside each chunk's speech are found (:func:`find_pauses`), and
the chunk's sentence boundaries are matched to them in order (:func:`place`), each
near where its share of the chunk's billing characters puts it and preferring long
pauses over the short ones commas and stops make. A boundary with no pause near it
falls back to that share, between the boundaries matched around it.

What real voices are assumed to do (measured on eSpeak NG in ``make bench``, stated in
docs/read-along.md): a pause of at least :data:`MIN_PAUSE` between two sentences,
usually 200-600 ms, against 0-250 ms inside one; the speech rate steady enough within
a chunk that a sentence lands within a few seconds of its share of the characters.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

with warnings.catch_warnings():
    # Deprecated on 3.11-3.12 (audioop-lts provides it from 3.13); see synth/measure.py.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = ["FRAME", "MIN_PAUSE", "LevelTap", "Pause", "PauseLog", "find_pauses", "place"]

FRAME = 0.01  # seconds per level: a sentence's start within 10 ms is all a reader sees
MIN_PAUSE = 0.12  # shorter silences are stops inside words ("t", "k" closures are ~80 ms)
RELATIVE_DB = 35.0  # a frame this far below the chunk's loudest is silence
FLOOR_DBFS = -55.0  # and so is one below this, however quiet the chunk
# How a boundary is matched (tuned on eSpeak NG in make bench, see docs/read-along.md):
# the cost of its distance from where the characters put it, as a share of the chunk's
# speech, against the credit of a long pause, capped where every pause is a sentence's.
DISTANCE_WEIGHT = 4.0
PAUSE_WEIGHT = 3.0
PAUSE_CAP = 0.5  # seconds
UNMATCHED = 1.2  # the cost of leaving a boundary to the characters' share
# The matching is boundaries x pauses; a chunk of hundreds of one-word "sentences" (a
# hostile document) keeps only its longest pauses, so a chunk costs milliseconds.
MAX_CELLS = 50_000


class LevelTap:
    """Counts the samples written through it and keeps one peak level per :data:`FRAME`.

    ``width`` and ``channels`` are the samples' (little-endian PCM; 8-bit unsigned).
    """

    def __init__(self, rate: int, width: int, channels: int) -> None:
        self.rate = rate
        self._width, self._channels = width, channels
        self._step = max(1, round(rate * FRAME)) * width * channels
        self._rest = b""
        self.levels: list[int] = []
        self.dropped = 0  # levels forgotten from the front (see :meth:`forget`)
        self.full = 1 << (8 * width - 1)

    def write(self, data: bytes | memoryview, /) -> None:
        view = memoryview(data)
        if self._rest:
            need = self._step - len(self._rest)
            head, view = bytes(view[:need]), view[need:]
            self._rest += head
            if len(self._rest) < self._step:
                return
            self._level(self._rest)
            self._rest = b""
        whole = len(view) - len(view) % self._step
        for at in range(0, whole, self._step):
            self._level(view[at : at + self._step])
        self._rest = bytes(view[whole:])

    def _level(self, frame: bytes | memoryview) -> None:
        if self._width == 1:
            frame = audioop.bias(frame, 1, -128)
        self.levels.append(audioop.max(frame, self._width))  # every channel: one peak

    def close(self) -> None:
        """The samples are all in: the last, partial frame counts too."""
        if self._rest:
            self._level(self._rest[: len(self._rest) - len(self._rest) % self._width])
            self._rest = b""

    @property
    def frame_seconds(self) -> float:
        return self._step // (self._width * self._channels) / self.rate

    def forget(self, before: int) -> None:
        """Let go of the levels before frame ``before`` (counted from the first)."""
        cut = min(max(0, before - self.dropped), len(self.levels))
        del self.levels[:cut]
        self.dropped += cut


@dataclass(frozen=True, slots=True)
class Pause:
    """A silence inside a chunk's speech, in seconds from the same origin as the chunk."""

    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


def find_pauses(
    levels: Sequence[int], *, frame: float, full: int, start: int = 0, stop: int | None = None
) -> tuple[list[Pause], tuple[float, float] | None]:
    """The silences of at least :data:`MIN_PAUSE` between the first and the last sound of
    ``levels[start:stop]``, and that span of speech; times count from ``levels[0]``.
    The span is None when nothing in it is louder than silence."""
    stop = len(levels) if stop is None else stop
    window = levels[start:stop]
    if not window:
        return [], None
    loudest = max(window)
    threshold = max(full * 10 ** (FLOOR_DBFS / 20), loudest * 10 ** (-RELATIVE_DB / 20))
    loud = [i for i, level in enumerate(window) if level >= threshold]
    if not loud:
        return [], None
    shortest = round(MIN_PAUSE / frame)
    pauses = [
        Pause((start + a + 1) * frame, (start + b) * frame)
        for a, b in itertools.pairwise(loud)
        if b - a - 1 >= shortest
    ]
    return pauses, ((start + loud[0]) * frame, (start + loud[-1] + 1) * frame)


def place(
    weights: Sequence[int], start: float, end: float, pauses: Sequence[Pause],
    speech: tuple[float, float] | None = None,
) -> list[float]:  # fmt: skip
    """Where each of a chunk's sentences starts, the first at ``start``.

    ``weights`` are the sentences' billing characters, ``start`` and ``end`` the chunk's
    audio, ``pauses`` the silences inside its speech, which runs over ``speech`` (the
    whole chunk when None). A sentence starts where the pause before it ends.
    """
    n = len(weights)
    if n <= 1:
        return [start] * n
    first, last = speech or (start, end)
    length = max(last - first, 1e-6)
    total = sum(max(w, 1) for w in weights)
    cumulative, share = [], 0
    for w in weights[:-1]:
        share += max(w, 1)
        cumulative.append(share / total)
    expected = [first + length * c for c in cumulative]
    if (n - 1) * len(pauses) > MAX_CELLS:
        longest = sorted(pauses, key=lambda p: p.length, reverse=True)[: MAX_CELLS // (n - 1)]
        pauses = sorted(longest, key=lambda p: p.start)
    matched = _match(expected, pauses, length)
    # Boundaries left unmatched share out the time between the matched ones around them.
    anchors: list[tuple[int, float]] = [(0, first)]
    anchors += [(k + 1, pauses[j].end) for k, j in enumerate(matched) if j is not None]
    anchors.append((n, last))
    bounds = [start] + [0.0] * (n - 1)
    for (k0, t0), (k1, t1) in itertools.pairwise(anchors):
        if k1 - k0 < 2:
            continue
        span = sum(max(w, 1) for w in weights[k0:k1])
        so_far = 0
        for k in range(k0 + 1, k1):
            so_far += max(weights[k - 1], 1)
            bounds[k] = t0 + (t1 - t0) * so_far / span
    for k, j in enumerate(matched):
        if j is not None:
            bounds[k + 1] = pauses[j].end
    return bounds


def _match(expected: Sequence[float], pauses: Sequence[Pause], length: float) -> list[int | None]:
    """Each boundary's pause (an index into ``pauses``, in increasing order), or None:
    the cheapest order-keeping assignment (dynamic programming, boundaries x pauses)."""
    n, m = len(expected), len(pauses)
    inf = float("inf")
    # cost[k][j]: the first k boundaries placed using only the first j pauses.
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    step: list[list[int]] = [[0] * (m + 1) for _ in range(n + 1)]  # 0 skip, 1 match, 2 none
    for j in range(m + 1):
        cost[0][j] = 0.0
    for k in range(1, n + 1):
        cost[k][0] = cost[k - 1][0] + UNMATCHED
        step[k][0] = 2
        for j in range(1, m + 1):
            pause = pauses[j - 1]
            fit = DISTANCE_WEIGHT * abs(pause.end - expected[k - 1]) / length - PAUSE_WEIGHT * min(
                pause.length, PAUSE_CAP
            )
            options = (cost[k][j - 1], cost[k - 1][j - 1] + fit, cost[k - 1][j] + UNMATCHED)
            best = min(range(3), key=options.__getitem__)
            cost[k][j], step[k][j] = options[best], best
    matched: list[int | None] = [None] * n
    k, j = n, m
    while k > 0:
        move = step[k][j]
        if move == 0:
            j -= 1
        elif move == 1:
            matched[k - 1] = j - 1
            k, j = k - 1, j - 1
        else:
            k -= 1
    return matched


@dataclass(frozen=True, slots=True)
class _Heard:
    start: float
    end: float
    pauses: tuple[Pause, ...]
    speech: tuple[float, float] | None


class PauseLog:
    """The pauses of each chunk, read from the samples as they stream through :attr:`tap`.

    Call :meth:`mark` once a chunk's samples are through; its levels are then analysed
    and forgotten, so a long book keeps a few pauses per chunk, not 100 levels a second.
    """

    def __init__(self, rate: int, width: int, channels: int) -> None:
        self.tap = LevelTap(rate, width, channels)
        self._heard: dict[int, _Heard] = {}

    def mark(self, chunk: int, start: float, end: float) -> None:
        """Chunk ``chunk``'s audio ran from ``start`` to ``end`` seconds of the stream."""
        frame = self.tap.frame_seconds
        first, stop = int(start / frame), int(end / frame)
        base = self.tap.dropped
        pauses, speech = find_pauses(
            self.tap.levels,
            frame=frame,
            full=self.tap.full,
            start=max(0, first - base),
            stop=max(0, stop - base),
        )
        shift = base * frame
        moved = [Pause(p.start + shift, p.end + shift) for p in pauses]
        span = None if speech is None else (speech[0] + shift, speech[1] + shift)
        self._heard[chunk] = _Heard(start, end, tuple(moved), span)
        self.tap.forget(stop)

    def starts(self, units: Sequence[tuple[int, int]]) -> list[float]:
        """Where each unit starts: ``units`` are (chunk, billing characters) in order, each
        chunk's together; every chunk must have been marked."""
        out: list[float] = []
        at = 0
        while at < len(units):
            chunk = units[at][0]
            end = at
            while end < len(units) and units[end][0] == chunk:
                end += 1
            heard = self._heard[chunk]
            weights = [w for _, w in units[at:end]]
            out += place(weights, heard.start, heard.end, heard.pauses, heard.speech)
            at = end
        return out

    def span(self, chunk: int) -> tuple[float, float]:
        """Where chunk ``chunk``'s audio starts and ends."""
        heard = self._heard[chunk]
        return heard.start, heard.end
