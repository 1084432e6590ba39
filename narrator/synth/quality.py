"""The quality gate: is this segment's audio speech of about the length its text needs?

A valid WAV header says nothing about what is inside. LLM voices are known to answer
with silence, to stop mid-sentence, or to miss their end of speech and run on (silence,
then babble or noise) — all billed as good. The gate reads every segment's samples,
before it is stitched, and judges it with no model of speech, only its signal:

- ``silent``: nothing louder than a whisper (-50 dBFS), or under 0.1 s of it, for a text
  with something to say (a chunk of punctuation alone may well be silent);
- ``cut``: speech much shorter than the text should take;
- ``runaway``: speech much longer than that, or a pause inside it of about 2 s or more
  followed by sound again (a second more per paragraph break in the chunk: the splitter
  packs short paragraphs together, and a voice may pause there), or a second or more of
  loud noise (zero-crossing rate of white noise), or seconds of silence at either end.

What a text "should take" is learned from the run itself: seconds of speech per *weight*
(a billing character; a Han character counts 2 like the bill) per provider + voice +
script (Latin and other alphabets, Han, kana, Hangul), as the median and MAD of the
segments that passed (the pool judges the ones passed before there were enough again
once the document is in). Until a script has :data:`MIN_SAMPLES` of them, a wide
prior stands in, so a slow voice, a fast emulator or a Chinese book are not "wrong";
judgments made then are ``provisional``. A chunk expects the sum of its scripts'
shares; digits take 3 to 8 Latin letters' time each ("1990" is two words, "1234567890"
eleven); a chunk that mixes scripts gets the prior's wide bounds. The only absolute
rules are for what speech cannot be: empty or silent.

The signal is read in :mod:`.measure` (plain Python over the PCM bytes, ``audioop``
for the per-frame peak and zero crossings, both in C: about 0.02 ms per second of
audio), the text weighed in :mod:`.textprofile`; this module judges.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from .measure import FLOOR_DBFS, Measurement, measure_file, measure_pcm
from .textprofile import TextProfile, profile

__all__ = [
    "KINDS",
    "MIN_SAMPLES",
    "Expectation",
    "Gate",
    "Measurement",
    "SpeechRates",
    "TextProfile",
    "Verdict",
    "measure_file",
    "measure_pcm",
    "profile",
]

KINDS = ("silent", "cut", "runaway")
SILENT_VOICED = 0.1  # seconds of sound below which a segment is silent
PAUSE_LIMIT = 2.0  # seconds of silence between sounds that speech does not make...
PAUSE_PER_PARAGRAPH = 1.0  # ...plus this per paragraph break inside the chunk
EDGE_LIMIT = 3.0  # seconds of silence before the first or after the last sound
NOISE_LIMIT = 1.0  # seconds of loud noise in a row that speech never makes (a "s" is ~0.2)
MIN_SAMPLES = 8  # passed segments of a script before its own statistics replace the prior
MAX_SAMPLES = 256  # the most recent ones are kept: a long run may drift
# Seconds added to each side: a short chunk's length is mostly its fixed overhead. Short
# chunks run long rather than short, so the low side needs far less.
SLACK_LOW = 0.15
SLACK_HIGH = 1.5
SIGMA_FLOOR = 0.1  # the spread never counts as less than 10% of the median
LOW_SIGMAS = 3.0  # so a segment 30% shorter than usual is cut, whatever the spread
HIGH_SIGMAS = 6.0
# Seconds of speech per weight unit before the run has taught better, and how far a
# segment may stray from it. Wide on purpose: they cover Qwen's voices, eSpeak (22 kHz,
# slower in Chinese) and the emulator's tone (faster in Chinese) alike.
PRIORS = {"latin": 0.065, "han": 0.08, "kana": 0.1, "hangul": 0.1}
PRIOR_LOW, PRIOR_HIGH = 0.3, 3.0
# A digit against a Latin letter: "1990" is two words, "1234567890" eleven; between those
# a digit takes about 4 letters' time, at least 3, at most 8.
DIGIT_CENTER, DIGIT_LOW, DIGIT_HIGH = 4.0, 3.0, 8.0


# --- what to expect -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expectation:
    """How long a chunk's speech should be: about ``seconds``, within ``low``-``high``."""

    seconds: float
    low: float
    high: float
    provisional: bool  # some script still runs on the prior


@dataclass
class SpeechRates:
    """Seconds of speech per weight unit, learned per script from the segments that passed.

    One instance per provider + voice (the gate keeps them apart).
    """

    samples: dict[str, deque[float]] = field(default_factory=dict)
    # (center, low, high) per script, and how many samples were added since: the median
    # and MAD are worked out again only once the samples have changed by a sixteenth.
    _stats: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    _fresh: dict[str, int] = field(default_factory=dict)

    def add(self, script: str, rate: float) -> None:
        """One rate learned (from this run, or stored by an earlier one)."""
        self.samples.setdefault(script, deque(maxlen=MAX_SAMPLES)).append(rate)
        self._fresh[script] = self._fresh.get(script, 0) + 1

    def bounds(self, script: str) -> tuple[float, float, float, bool]:
        """(center, low, high, provisional) seconds per weight unit for ``script``."""
        if script == "digits":
            center, low, high, cold = self.bounds("latin")
            return center * DIGIT_CENTER, low * DIGIT_LOW, high * DIGIT_HIGH, cold
        seen = self.samples.get(script)
        if seen is None or len(seen) < MIN_SAMPLES:
            prior = PRIORS[script]
            return prior, prior * PRIOR_LOW, prior * PRIOR_HIGH, True
        cached = self._stats.get(script)
        if cached is None or self._fresh[script] * 16 >= len(seen):
            center = statistics.median(seen)
            mad = statistics.median([abs(r - center) for r in seen])
            sigma = max(1.4826 * mad, SIGMA_FLOOR * center)
            low = max(center - LOW_SIGMAS * sigma, PRIOR_LOW * center)
            cached = self._stats[script] = (center, low, center + HIGH_SIGMAS * sigma)
            self._fresh[script] = 0
        return (*cached, False)

    def expect(self, text: TextProfile) -> Expectation:
        seconds = low = high = 0.0
        provisional = False
        for script, weight in text.weights:
            center, lo, hi, cold = self.bounds(script)
            seconds += weight * center
            low += weight * lo
            high += weight * hi
            provisional = provisional or cold
        if text.mixed:
            # A chunk that switches scripts may switch voices, or read one script with
            # the other's rules (eSpeak spells Han out in an English voice): the prior's
            # wide bounds, not what pure chunks taught.
            prior = SpeechRates()
            low = min(low, sum(w * prior.bounds(s)[1] for s, w in text.weights))
            high = max(high, sum(w * prior.bounds(s)[2] for s, w in text.weights))
        return Expectation(
            round(seconds, 3),
            round(max(0.0, low - SLACK_LOW), 3),
            round(high + SLACK_HIGH, 3),
            provisional,
        )


# --- the verdict --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """The gate's judgment of one segment.

    ``kind`` is empty for a segment that passed, else one of :data:`KINDS`; ``reason``
    says what was seen in a few words; ``badness`` orders attempts (0 is fine).
    """

    kind: str
    reason: str
    measured: float  # seconds of speech (the span)
    expected: float  # seconds the text should take
    low: float
    high: float
    provisional: bool
    badness: float

    @property
    def ok(self) -> bool:
        return not self.kind


def judge(m: Measurement, text: TextProfile, expect: Expectation) -> Verdict:
    """Judge measurement ``m`` of a segment of ``text`` against ``expect``."""

    def verdict(kind: str, reason: str, badness: float) -> Verdict:
        return Verdict(
            kind, reason, m.span, expect.seconds, expect.low, expect.high, expect.provisional,
            round(badness, 3),
        )  # fmt: skip

    if m.seconds <= 0:  # nothing at all: fine only for a text with nothing to say
        return (
            verdict("silent", "empty: no samples", 1000.0) if text.speakable else verdict("", "", 0)
        )
    # How far the length is from the expected one, in log terms: orders the attempts.
    distance = abs(math.log((m.span + 0.1) / (expect.seconds + 0.1)))
    if text.speakable and (m.voiced < SILENT_VOICED or m.peak_dbfs < FLOOR_DBFS):
        peak = f"{m.peak_dbfs:.0f} dBFS" if m.peak_dbfs > -math.inf else "none"
        return verdict("silent", f"silent: {m.voiced:.2f} s of sound, peak {peak}", 100.0)
    pause_limit = PAUSE_LIMIT + PAUSE_PER_PARAGRAPH * min(text.paragraph_breaks, 2)
    edge = max(m.lead, m.tail)
    if m.noise >= NOISE_LIMIT:
        return verdict("runaway", f"{m.noise:.1f} s of noise", 10.0 + m.noise)
    if m.pause >= pause_limit:
        return verdict("runaway", f"a {m.pause:.1f} s silence, then sound again", 10.0 + m.pause)
    if m.span > expect.high:
        reason = f"{m.span:.1f} s of sound, at most {expect.high:.1f} s expected"
        return verdict("runaway", reason, 10.0 + distance)
    if text.speakable and m.span < expect.low:
        reason = f"{m.span:.1f} s of sound, at least {expect.low:.1f} s expected"
        return verdict("cut", reason, 10.0 + distance)
    if edge >= EDGE_LIMIT:
        return verdict("runaway", f"{edge:.1f} s of silence at an end", 5.0 + edge)
    return verdict("", "", distance)


def rate_of(text: str, m: Measurement) -> tuple[str, float] | None:
    """(script, seconds per weight unit) that a passed segment teaches; None for a chunk
    too short or too mixed to teach anything."""
    weighed = profile(text)
    script = weighed.main
    if script is None or m.span <= 0:
        return None
    return script, m.span / weighed.weight


class Gate:
    """Judges segments against what the run has heard so far, per provider + voice."""

    def __init__(self) -> None:
        self._rates: dict[str, SpeechRates] = {}

    def rates(self, voice_key: str) -> SpeechRates:
        """The learned rates of one provider + voice (``voice_key``)."""
        return self._rates.setdefault(voice_key, SpeechRates())

    def judge(self, voice_key: str, text: str, m: Measurement) -> Verdict:
        """Judge one segment; nothing is learned (call :meth:`passed` for that)."""
        weighed = profile(text)
        return judge(m, weighed, self.rates(voice_key).expect(weighed))

    def passed(self, voice_key: str, text: str, m: Measurement) -> tuple[str, float] | None:
        """Learn from a segment that passed; the (script, rate) learned, if any, to store."""
        learned = rate_of(text, m)
        if learned is not None:
            self.rates(voice_key).add(*learned)
        return learned

    def warm(self, voice_key: str, rates: Iterable[tuple[str, float]]) -> None:
        """Start from rates stored by earlier runs (oldest first)."""
        learned = self.rates(voice_key)
        for script, rate in rates:
            if script in PRIORS:
                learned.add(script, rate)
