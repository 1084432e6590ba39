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

Everything here is plain Python over the PCM bytes (``audioop`` for the per-frame
peak and zero crossings, both in C): about 0.02 ms per second of audio.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import statistics
import warnings
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import regex

from ..util.wav import read_wav_info

with warnings.catch_warnings():
    # Deprecated on 3.11-3.12 (audioop-lts provides it from 3.13); see emulator.py.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

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
FRAME = 0.04  # seconds per analysis frame: finer costs more and tells nothing new
FLOOR_DBFS = -50.0  # a frame peaking below this is silence, whatever the segment's own level
RELATIVE_DB = 40.0  # and so is one peaking this far below the segment's peak
SILENT_VOICED = 0.1  # seconds of sound below which a segment is silent
PAUSE_LIMIT = 2.0  # seconds of silence between sounds that speech does not make...
PAUSE_PER_PARAGRAPH = 1.0  # ...plus this per paragraph break inside the chunk
EDGE_LIMIT = 3.0  # seconds of silence before the first or after the last sound
NOISE_ZCR = 0.3  # zero crossings per sample: white noise ~0.5, voiced speech < 0.15
NOISE_FRAMES = 3  # one frame in this many is looked at for noise
NOISE_LIMIT = 1.0  # seconds of loud noise in a row that speech never makes (a "s" is ~0.2)
MIN_SAMPLES = 8  # passed segments of a script before its own statistics replace the prior
MAX_SAMPLES = 256  # the most recent ones are kept: a long run may drift
MIN_WEIGHT = 12.0  # shorter chunks are mostly their fixed overhead: not learned from
PURE = 0.85  # a chunk this much of one script teaches that script's rate
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

_SCRIPTS = tuple(PRIORS)


# --- the signal ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measurement:
    """What the gate reads from one segment's samples; times in seconds."""

    seconds: float  # the whole segment
    peak_dbfs: float  # -inf for digital silence
    voiced: float  # time above the silence threshold
    lead: float  # silence before the first sound
    span: float  # from the first sound to the last: the speech
    tail: float  # silence after the last sound
    pause: float  # the longest silence between two sounds
    noise: float  # the longest run of loud noise-like frames


def _dbfs(level: float, full: float) -> float:
    return 20 * math.log10(level / full) if level > 0 else -math.inf


def measure_pcm(pcm: bytes, *, rate: int, channels: int = 1, width: int = 2) -> Measurement:
    """Measure little-endian PCM samples (any rate, 8-32 bit, mono or interleaved)."""
    pcm = pcm[: len(pcm) - len(pcm) % (width * channels)]  # whole frames only
    if width == 1:  # WAV's 8-bit samples are unsigned; audioop wants them signed
        pcm = audioop.bias(pcm, 1, -128)
    if channels == 2:
        pcm = audioop.tomono(pcm, width, 0.5, 0.5)
    elif channels > 2:  # rare; the first channel tells silence from sound well enough
        step = width * channels
        pcm = b"".join(pcm[i : i + width] for i in range(0, len(pcm) - step + 1, step))
    full = float(1 << (8 * width - 1))
    samples = len(pcm) // width
    seconds = samples / rate
    if samples == 0:
        return Measurement(0.0, -math.inf, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    size = max(1, round(rate * FRAME)) * width
    view = memoryview(pcm)  # slices of a view are not copies
    # A frame's level is its peak: as good as its RMS to tell sound from silence, and
    # cheaper (this scan is most of the gate's cost).
    levels = [audioop.max(view[i : i + size], width) for i in range(0, len(pcm), size)]
    loudest = max(levels)
    threshold = max(full * 10 ** (FLOOR_DBFS / 20), loudest * 10 ** (-RELATIVE_DB / 20))
    frame = size // width / rate
    loud = [i for i, level in enumerate(levels) if level >= threshold]
    peak = _dbfs(loudest, full)
    if not loud:
        return Measurement(seconds, peak, 0.0, seconds, 0.0, 0.0, 0.0, 0.0)
    first, last = loud[0], loud[-1]
    pause = max((b - a - 1 for a, b in itertools.pairwise(loud)), default=0)
    # Noise lasts, so one loud frame in every NOISE_FRAMES is enough to find it: its zero
    # crossings are counted, and a run of noisy ones is a run of noise.
    noise = run = 0
    for i in range(first, last + 1, NOISE_FRAMES):
        part = view[i * size : (i + 1) * size]
        crossings = audioop.cross(part, width) if levels[i] >= threshold else 0
        if crossings >= NOISE_ZCR * (len(part) // width):
            run += 1
            noise = max(noise, run)
        else:
            run = 0
    span_end = min(seconds, (last + 1) * frame)
    return Measurement(
        seconds=round(seconds, 4),
        peak_dbfs=round(peak, 2),
        voiced=round(min(seconds, len(loud) * frame), 4),
        lead=round(first * frame, 4),
        span=round(span_end - first * frame, 4),
        tail=round(max(0.0, seconds - span_end), 4),
        pause=round(pause * frame, 4),
        noise=round(noise * NOISE_FRAMES * frame, 4),
    )


def measure_file(path: Path) -> Measurement:
    """Measure the WAV file at ``path`` (checked like every segment: RIFF/WAVE PCM)."""
    info = read_wav_info(path)
    with path.open("rb") as fh:
        fh.seek(info.data_offset)
        pcm = fh.read(info.data_size)
    return measure_pcm(pcm, rate=info.rate, channels=info.channels, width=info.width)


# --- the text -----------------------------------------------------------------------------


# Counted with regular expressions (in C): a Python loop over every character cost more
# than measuring the audio.
_HAN = regex.compile(r"\p{Han}")
_KANA = regex.compile(r"[\p{Hiragana}\p{Katakana}]")
_HANGUL = regex.compile(r"\p{Hangul}")
_ALNUM = re.compile(r"[^\W_]")  # what str.isalnum() says yes to
_DIGIT = re.compile(r"\d")  # decimal digits, in any script
_BREAKS = re.compile(r"[^\S ]")  # whitespace but the plain space: line breaks and the like


@dataclass(frozen=True, slots=True)
class TextProfile:
    """What the gate needs to know of a chunk's text: its weight per script."""

    weights: tuple[tuple[str, float], ...]  # (script, weight), only scripts present
    paragraph_breaks: int
    speakable: bool  # it has a letter or a digit: it must make a sound

    @property
    def weight(self) -> float:
        return sum(w for _, w in self.weights)

    @property
    def main(self) -> str | None:
        """The script that makes up at least :data:`PURE` of a chunk long enough to teach
        its rate, if any (never ``digits``: they are read too variously)."""
        total = self.weight
        for script, w in self.weights:
            if total >= MIN_WEIGHT and w >= PURE * total and script != "digits":
                return script
        return None

    @property
    def mixed(self) -> bool:
        """Two scripts (digits aside) with neither making up :data:`PURE` of the letters."""
        letters = [w for script, w in self.weights if script != "digits"]
        return len(letters) > 1 and max(letters) < PURE * sum(letters)


@functools.lru_cache(maxsize=4096)
def profile(text: str) -> TextProfile:
    """Weigh a chunk's text: Han 2 (as billed), any other letter or a digit 1 (a digit
    in its own class); spaces and punctuation 1, in the dominant script (they are pauses)."""
    alnum = len(_ALNUM.findall(text))
    han, kana, hangul, digits = (
        len(pattern.findall(text)) if alnum and not (text.isascii() and pattern is not _DIGIT)
        else 0
        for pattern in (_HAN, _KANA, _HANGUL, _DIGIT)
    )  # fmt: skip
    counts = {
        "latin": float(alnum - han - kana - hangul - digits),
        "han": 2.0 * han,
        "kana": float(kana),
        "hangul": float(hangul),
        "digits": float(digits),
    }
    quiet = len(text) - alnum - len(_BREAKS.findall(text))
    speakable = alnum > 0
    dominant = max(_SCRIPTS, key=lambda s: counts[s])  # Latin for digits alone
    counts[dominant] += quiet
    weights = tuple((s, w) for s, w in counts.items() if w > 0)
    breaks = text.count("\n\n") + text.count("\u2029")
    return TextProfile(weights, breaks, speakable)


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
