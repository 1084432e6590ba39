"""What a segment of speech may look like: its format and how long its text can take.

The service's answer is checked against these bounds before it is stored, and the
stitcher checks every piece again before writing: a header claiming 1 Hz, 16,383
channels or a byte rate that overflows, or audio far longer than its text could be
spoken in, is never stored, stitched or converted. The bounds are wide on purpose:
they stop what no speech service sends, not slow voices (judging how a segment
*sounds* against the run's speech rate is another check's job).
"""

from __future__ import annotations

from ..errors import AudioError
from ..settings import MAX_GAP_MS as MAX_GAP_MS  # the stitcher's bound, a setting's limit
from ..util.wav import WavInfo

__all__ = [
    "BASE_SECONDS",
    "MAX_CHANNELS",
    "MAX_GAP_MS",
    "MAX_RATE",
    "MIN_RATE",
    "SECONDS_PER_CHARACTER",
    "WIDTHS",
    "Format",
    "check_format",
    "check_segment",
    "describe",
    "format_of",
    "max_seconds",
]


MIN_RATE = 8_000  # telephone quality; nothing sensible for speech is lower
MAX_RATE = 192_000
MAX_CHANNELS = 8
WIDTHS = (1, 2, 3, 4)  # bytes per sample
# However slowly a voice speaks, a billing character takes less than half a second
# (a Han character, counted twice, about a quarter); plus room for leading silence.
SECONDS_PER_CHARACTER = 0.5
BASE_SECONDS = 10.0

Format = tuple[int, int, int]  # rate, channels, bytes per sample


def max_seconds(billing_chars: int) -> float:
    """The longest audio a chunk of ``billing_chars`` characters may be."""
    return BASE_SECONDS + SECONDS_PER_CHARACTER * max(0, billing_chars)


def format_of(info: WavInfo) -> Format:
    return (info.rate, info.channels, info.width)


def describe(fmt: Format) -> str:
    rate, channels, width = fmt
    return f"{rate} Hz, {channels} ch, {8 * width}-bit"


def check_format(info: WavInfo, *, name: str = "audio") -> None:
    """Refuse a header no speech service sends, or whose sizes do not add up."""
    if not MIN_RATE <= info.rate <= MAX_RATE:
        raise AudioError(f"{name} claims {info.rate} Hz; speech is {MIN_RATE}-{MAX_RATE} Hz")
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise AudioError(f"{name} claims {info.channels} channels; at most {MAX_CHANNELS}")
    if info.width not in WIDTHS:
        raise AudioError(f"{name} claims {8 * info.width}-bit samples")
    if info.block_align and info.block_align != info.frame_size:
        raise AudioError(
            f"{name}: block align {info.block_align} is not {info.channels} ch × {info.width} bytes"
        )
    if info.byte_rate and info.byte_rate != info.rate * info.frame_size:
        raise AudioError(
            f"{name}: byte rate {info.byte_rate} does not match {describe(format_of(info))}"
        )


def check_segment(
    info: WavInfo, *, billing_chars: int, expected: Format | None = None, name: str = "audio"
) -> None:
    """Refuse a segment with an insane header, another format than the run's
    (``expected``), or more seconds than its text could take."""
    check_format(info, name=name)
    if expected is not None and format_of(info) != expected:
        raise AudioError(
            f"{name} is {describe(format_of(info))}, unlike the run's other segments "
            f"({describe(expected)})"
        )
    limit = max_seconds(billing_chars)
    if info.seconds > limit:
        raise AudioError(
            f"{name} lasts {info.seconds:,.0f} s, more than {billing_chars} characters can "
            f"take ({limit:.0f} s at most)"
        )
