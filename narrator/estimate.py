"""What a run would cost and how long it would take, worked out without a single request.

Documents are split exactly as a run splits them, so the chunk count is the request
count (before retries, and counting cached chunks too: an upper bound). The price and
the service's latency are not published per request; both are assumptions the caller
states, and the report repeats them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .chunks.cast import document_casting
from .chunks.language import resolve_language
from .chunks.lexicon import document_lexicon
from .chunks.split import billing_bound, split_document
from .errors import InputError
from .inputs.documents import Document
from .inputs.limits import DEFAULT_MAX_TEXT_BYTES
from .settings import default
from .synth.providers import counting
from .util.registry import spec

__all__ = [
    "DEFAULT_LATENCY",
    "DEFAULT_PRICE_PER_10K_CHARS",
    "LOCAL_SECONDS_PER_CHAR",
    "DocumentEstimate",
    "Estimate",
    "VoiceEstimate",
    "estimate",
    "format_cost",
    "most_cost",
    "wall_clock",
]


DEFAULT_PRICE_PER_10K_CHARS = 0.10  # USD; an assumption, check your plan's price
DEFAULT_LATENCY = 3.0  # seconds per request; an assumption for a full 600-character chunk
# The offline voice works on this machine: about half a millisecond of one core per
# character (eSpeak NG, measured at ~0.4 ms on a loaded 2-core machine), not a
# service's seconds per request.
LOCAL_SECONDS_PER_CHAR = 0.0005


@dataclass(frozen=True, slots=True)
class DocumentEstimate:
    """One document's share: requests, billing characters, cost and time if run alone."""

    input: str
    title: str
    lang: str
    chunks: int
    billing_characters: int
    cost: float
    seconds: float


@dataclass(frozen=True, slots=True)
class VoiceEstimate:
    """One voice's share of a run with a cast: its requests and billing characters."""

    voice: str
    chunks: int
    billing_characters: int


@dataclass(frozen=True, slots=True)
class Estimate:
    """A whole run: every document, the totals, and the assumptions behind them."""

    documents: tuple[DocumentEstimate, ...]
    chunks: int
    billing_characters: int
    cost: float
    seconds: float
    price_per_10k_chars: float
    latency: float
    rpm: float
    concurrency: int
    voices: tuple[VoiceEstimate, ...] = ()  # per voice, when a cast gives voices out
    failed: tuple[tuple[str, str], ...] = ()  # (input, why) of documents left out


def wall_clock(requests: int, *, rpm: float, concurrency: int, latency: float) -> float:
    """Seconds for ``requests`` requests: each start waits for the rate limit and for a
    free slot (``concurrency`` requests of ``latency`` seconds each), the last one then
    takes ``latency``."""
    if requests <= 0:
        return 0.0
    interval = max(60.0 / rpm, latency / concurrency)
    return (requests - 1) * interval + latency


def estimate(
    documents: Sequence[Document],
    *,
    provider: str = default("provider"),
    max_chars: int = default("max_chars"),
    lang: str = default("lang"),
    rpm: float | None = None,
    concurrency: int | None = None,
    price_per_10k_chars: float = DEFAULT_PRICE_PER_10K_CHARS,
    latency: float = DEFAULT_LATENCY,
    count: Callable[[str], int] | None = None,
    lexicons: Sequence[Path] = (),
    lexicons_last: Sequence[Path] = (),
    voice: str = "",
    casts: Sequence[Path] = (),
    casts_last: Sequence[Path] = (),
    dialogue_voice: str = "",
    speaker_lines: bool = False,
    model: str = "",
    max_text_chars: int = DEFAULT_MAX_TEXT_BYTES,
) -> Estimate:
    """Split every document as a run with ``provider`` would and total requests,
    characters, cost and time.

    Chunks are cut at the provider's limit (or ``max_chars``, if lower) and counted its
    way (unless ``count`` says otherwise); ``rpm`` and ``concurrency`` default to the
    provider's. A provider with a price of its own (the offline voice: nothing to pay)
    is priced at it, whatever ``price_per_10k_chars`` says. Each document is respelled
    as a run would (``lexicons``, its own, then ``lexicons_last``; see ``Settings``),
    and cast the same way (``casts``, its own, ``casts_last``, ``dialogue_voice``,
    ``speaker_lines``): then :attr:`Estimate.voices` counts per voice, and an unknown
    cast voice (for ``model``, default the provider's) is a
    :class:`~narrator.errors.ConfigError`. Its spoken text is at most ``max_text_chars``;
    a document whose respelling fails (too slow, too large) is left out of the totals and
    named in ``Estimate.failed``.
    """
    from .settings import check_voice

    def spell(name: str) -> str:
        return check_voice(provider, name, model=model or entry.model, base_url=entry.base_url())

    entry = spec(provider)
    limit, provider_count = counting(provider)  # from the class: no client, no key
    max_chars = min(max_chars or entry.max_chars, limit)  # 0: the provider's default
    count = count or provider_count
    rpm = rpm or entry.rpm
    concurrency = concurrency or entry.concurrency
    if entry.price_per_10k_chars is not None:
        price_per_10k_chars = entry.price_per_10k_chars
    voice = voice or entry.voice  # checked by the run's settings, for the run's model
    dialogue_voice = spell(dialogue_voice) if dialogue_voice else ""
    local = not entry.networked

    def seconds_for(requests: int, chars: int) -> float:
        if local:  # the machine's own pace, spread over its cores
            return chars * LOCAL_SECONDS_PER_CHAR / concurrency
        return wall_clock(requests, rpm=rpm, concurrency=concurrency, latency=latency)

    per_doc = []
    per_voice: dict[str, list[int]] = {}
    failed = []
    for doc in documents:
        doc_lang = resolve_language(doc, lang)
        lexicon = document_lexicon(doc.source, lexicons, lexicons_last)
        casting = document_casting(
            doc.source,
            casts,
            casts_last,
            voice=voice,
            dialogue_voice=dialogue_voice,
            speaker_lines=speaker_lines,
            spell=spell,
        )
        try:
            chunks = split_document(
                doc,
                max_chars=max_chars,
                lang=doc_lang,
                count=count,
                lexicon=lexicon,
                voice=voice,
                casting=casting,
                max_text_chars=max_text_chars,
            )
        except InputError as exc:
            failed.append((doc.source, str(exc)))
            continue
        for chunk in chunks:
            share = per_voice.setdefault(chunk.voice or voice, [0, 0])
            share[0] += 1
            share[1] += chunk.billing_chars
        chars = sum(c.billing_chars for c in chunks)
        per_doc.append(
            DocumentEstimate(
                input=doc.source,
                title=doc.title,
                lang=doc_lang,
                chunks=len(chunks),
                billing_characters=chars,
                cost=chars / 10_000 * price_per_10k_chars,
                seconds=seconds_for(len(chunks), chars),
            )
        )
    total_chunks = sum(d.chunks for d in per_doc)
    total_chars = sum(d.billing_characters for d in per_doc)
    return Estimate(
        documents=tuple(per_doc),
        chunks=total_chunks,
        billing_characters=total_chars,
        cost=total_chars / 10_000 * price_per_10k_chars,
        # All documents share one pool and one limiter: the total is one long queue.
        seconds=seconds_for(total_chunks, total_chars),
        price_per_10k_chars=price_per_10k_chars,
        # For the offline voice: the seconds an average chunk takes on this machine.
        latency=total_chars * LOCAL_SECONDS_PER_CHAR / max(1, total_chunks) if local else latency,
        rpm=rpm,
        concurrency=concurrency,
        voices=tuple(VoiceEstimate(v, n, c) for v, (n, c) in per_voice.items())
        if len(per_voice) > 1
        else (),
        failed=tuple(failed),
    )


def most_cost(
    documents: Sequence[Document],
    *,
    provider: str = default("provider"),
    lang: str = default("lang"),
    price_per_10k_chars: float = DEFAULT_PRICE_PER_10K_CHARS,
    lexicons: Sequence[Path] = (),
    lexicons_last: Sequence[Path] = (),
    voice: str = "",
    casts: Sequence[Path] = (),
    casts_last: Sequence[Path] = (),
    dialogue_voice: str = "",
    speaker_lines: bool = False,
    model: str = "",
    max_text_chars: int = DEFAULT_MAX_TEXT_BYTES,
) -> float:
    """The most :func:`estimate` (given the same arguments) can say ``documents`` cost,
    counted without splitting them (:func:`~narrator.chunks.split.billing_bound`): a
    spending limit above it holds without the split, which a long book takes seconds for.
    A document whose respelling fails its budget makes it infinite (only the split can
    tell what it costs, and :func:`estimate` leaves it out)."""
    from .settings import check_voice

    def spell(name: str) -> str:
        return check_voice(provider, name, model=model or entry.model, base_url=entry.base_url())

    entry = spec(provider)
    _, count = counting(provider)
    if entry.price_per_10k_chars is not None:
        price_per_10k_chars = entry.price_per_10k_chars
    voice = voice or entry.voice
    dialogue_voice = spell(dialogue_voice) if dialogue_voice else ""
    chars = 0
    for doc in documents:
        casting = document_casting(
            doc.source,
            casts,
            casts_last,
            voice=voice,
            dialogue_voice=dialogue_voice,
            speaker_lines=speaker_lines,
            spell=spell,
        )
        try:
            chars += billing_bound(
                doc,
                lang=resolve_language(doc, lang),
                count=count,
                lexicon=document_lexicon(doc.source, lexicons, lexicons_last),
                voice=voice,
                casting=casting,
                max_text_chars=max_text_chars,
            )
        except InputError:
            return math.inf
    return chars / 10_000 * price_per_10k_chars


def format_cost(usd: float) -> str:
    """Dollars with cents, or more digits for amounts under a cent."""
    if usd == 0:
        return "$0.00"
    if usd < 0.01:
        return f"${usd:.{max(2, 1 - math.floor(math.log10(usd)))}f}"
    return f"${usd:,.2f}"
