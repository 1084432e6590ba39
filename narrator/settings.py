"""Settings: every knob of a run, validated once.

The library takes a :class:`Settings` and never reads the environment; the CLI builds
one from flags, the environment (secrets only) and defaults.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .util.folders import default_cache_dir
from .util.image import image_mime
from .util.registry import REGISTRY, spec
from .util.sanitize import masked_url, strip_controls

__all__ = [
    "AUDIO_FORMATS",
    "CUE_GRAINS",
    "LANGUAGES",
    "MAX_GAP_MS",
    "QA_MODES",
    "READ_ALONG_FORMAT",
    "REGIONS",
    "SUBTITLE_KINDS",
    "AudiobookOptions",
    "Settings",
    "check_lang",
    "check_model",
    "check_voice",
    "default",
    "default_stall_seconds",
]


QA_MODES = ("on", "strict", "off")
REGIONS = ("intl", "cn")
# The audiobook formats (book.encode holds how each is written) and subtitle kinds.
AUDIO_FORMATS = ("mp3", "m4b", "m4a", "flac", "ogg", "opus", "wav")
SUBTITLE_KINDS = ("srt", "vtt")
CUE_GRAINS = ("sentence", "chunk")  # one subtitle cue per sentence (the default), or chunk
READ_ALONG_FORMAT = "epub"  # an EPUB 3 whose text lights up with the audio (book.readalong)
MAX_GAP_MS = 60_000  # the longest silence a stitcher writes between two pieces
# Sentence-splitting languages: pysbd's, plus those the splitter reads with English
# rules on purpose (Korean, Portuguese) and DashScope's names for Chinese.
LANGUAGES = (
    "am ar bg cmn da de el en es fa fr hi hy it ja kk ko mr my nl pl pt ru sk ur yue zh"
).split()
_LANG = re.compile(r"(?P<code>[a-z]{2,3})(?:[-_][a-z0-9]{2,8})*")
# Model names are path-like identifiers ("alibaba/qwen3-tts-flash", "tts-1").
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*")


@dataclass(frozen=True, slots=True)
class AudiobookOptions:
    """How the finished audiobook is written.

    ``clean_joins`` trims each segment's own silence and fades every cut; ``None``
    means on for every format except WAV, which by default keeps every segment's
    samples exactly as the service sent them.
    """

    format: str | None = None  # None: from the output's extension
    title: str | None = None  # None: the document's title
    author: str | None = None
    album: str | None = None
    year: str | None = None
    cover: Path | None = None  # JPEG or PNG
    normalize: bool = False
    target_lufs: float = -18.0
    true_peak: float = -1.5
    split_hours: float | None = None
    subtitles: str | None = None  # srt | vtt
    clean_joins: bool | None = None
    cue: str = CUE_GRAINS[0]  # a subtitle cue per sentence or per chunk
    read_along: Path | None = None  # an EPUB 3 read-along book beside the audiobook

    def __post_init__(self) -> None:
        if self.cover is not None:  # a str is as good as a Path
            object.__setattr__(self, "cover", Path(self.cover))
        for name in ("title", "author", "album", "year"):
            value = getattr(self, name)
            if value is not None:  # control characters make tags, and the feed, invalid
                object.__setattr__(self, name, " ".join(strip_controls(value).split()))
        formats = (*AUDIO_FORMATS, READ_ALONG_FORMAT)
        if self.format is not None and self.format.lower() not in formats:
            raise ConfigError(
                f"format {self.format}: choose one of {', '.join(formats)}", setting="format"
            )
        if self.cue not in CUE_GRAINS:
            raise ConfigError(f"cue {self.cue}: choose sentence or chunk", setting="cue")
        if self.read_along is not None and self.read_along.suffix.lower() != ".epub":
            raise ConfigError(
                f"--read-along {self.read_along}: name the book with the extension .epub",
                setting="read_along",
            )
        if self.subtitles is not None and self.subtitles not in SUBTITLE_KINDS:
            raise ConfigError(f"subtitles {self.subtitles}: choose srt or vtt", setting="subtitles")
        if self.split_hours is not None and not self.split_hours > 0:
            raise ConfigError("split_hours must be greater than 0", setting="split_hours")
        if not -70 <= self.target_lufs <= -5:
            raise ConfigError("the loudness target must be between -70 and -5 LUFS")
        if not -9 <= self.true_peak <= 0:
            raise ConfigError("the true-peak limit must be between -9 and 0 dBTP")
        if self.cover is not None:
            image_mime(self.cover)  # fail now, not after the whole book is synthesized


@dataclass(frozen=True, slots=True)
class Settings:
    """How to narrate. Defaults suit the AIML API's ``alibaba/qwen3-tts-flash``.

    An empty ``base_url``, ``model`` or ``voice`` becomes the provider's default (its
    entry in :data:`narrator.util.registry.REGISTRY`); so does a ``rpm`` or
    ``concurrency`` or ``max_chars`` of 0. ``region`` picks DashScope's international (Singapore) or
    Beijing endpoint. The voice is matched case-insensitively and stored in the
    service's spelling; an unknown voice or ``lang`` is a :class:`ConfigError`.
    """

    provider: str = "aimlapi"
    api_key: str | None = field(default=None, repr=False)  # never shown in logs or reprs
    base_url: str = ""
    model: str = ""
    voice: str = ""
    region: str = "intl"
    concurrency: int = 0  # 0: the provider's default
    rpm: float = 0.0  # 0: the provider's default; math.inf: no limit
    max_chars: int = 0  # 0: the provider's default (the registry's, chosen by measurement)
    lang: str = "auto"  # a pysbd code, or "auto": detected per document from its text
    gap_ms: int = 300
    chapter_gap_ms: int = 1200
    paragraph_gap_ms: int = 600  # between chunks that start a new paragraph
    # the output: format, tags, loudness, sidecars
    audiobook: AudiobookOptions = field(default_factory=AudiobookOptions)
    cache_dir: Path | None = None  # None: util.folders.default_cache_dir(), XDG's
    # The store's rows in a PostgreSQL database several machines share
    # (postgresql://USER[:PASSWORD]@HOST[:PORT]/DB, docs/store.md); None: SQLite in the
    # cache folder. The audio stays in the cache folder. Never shown with its password.
    store_url: str | None = field(default=None, repr=False)
    # The cache's size cap, enforced at the end of each run (least recently used segments
    # go first, never one of a run in progress); 0: no cap. 20 GB is ~125 h of WAV audio.
    cache_max_bytes: int = 20 * 10**9
    retries: int = 8  # attempts per chunk, the first included
    backoff_base: float = 0.5  # seconds; 0 turns backoff off (tests)
    backoff_max: float = 30.0  # also caps a service's Retry-After
    adaptive_rate: bool = True
    request_timeout: float = 120.0
    # No chunk progressing this long fails the run; None: the slowest request and download
    # (2 x request_timeout) plus three minutes.
    stall_timeout: float | None = None
    max_segment_bytes: int = 50 * 1024 * 1024
    # Audio links to these hosts, or (True) to any loopback/private address, are fetched
    # although they are not public; the endpoint's own host always is (see netpolicy).
    allow_hosts: tuple[str, ...] = ()
    allow_private_network: bool = False
    force: bool = False  # make audiobooks again even when they are up to date
    # The quality gate (quality.py): on (bad segments are synthesized again, then kept and
    # flagged), strict (a document with a flagged segment fails) or off.
    qa: str = "on"
    qa_retries: int = 2  # re-syntheses of one bad segment
    # Re-syntheses of bad segments that fix nothing, in % of a run's chunks (one that
    # fixes its segment is not counted; synth/retakes.py).
    qa_budget: float = 5.0
    # Pronunciation lexicons (chunks/lexicon.py), later ones winning per term: ``lexicon``
    # first (the settings file's), then each document's own (lexicon.toml in its folder,
    # NAME.lexicon.toml beside it), then ``lexicon_override`` (the command line's).
    lexicon: tuple[Path, ...] = ()
    lexicon_override: tuple[Path, ...] = ()
    # A cast of voices (chunks/cast.py): quoted speech in ``dialogue_voice`` ("": the
    # narrator's), cast files found like lexicons (``cast`` the settings file's, each
    # document's cast.toml / NAME.cast.toml, ``cast_override`` the command line's),
    # ``NAME:`` paragraphs read by that speaker, and the silence between a quotation and
    # its tag.
    dialogue_voice: str = ""
    cast: tuple[Path, ...] = ()
    cast_override: tuple[Path, ...] = ()
    speaker_lines: bool = False
    quote_gap_ms: int = 150
    # The most text a document may hold, and so what its respellings may grow it to
    # (inputs.limits.DEFAULT_MAX_TEXT_BYTES, which settings may not import).
    max_text_bytes: int = 20_000_000
    # Several workers on one account pace together in this Redis (redis://, rediss:// or
    # unix://; narrator.cluster.pacing); None: this process paces itself. It may hold a
    # password: never shown.
    pacing_url: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Every path field takes a str as well as a Path (os.PathLike), stored as a Path.
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        for name in ("lexicon", "lexicon_override"):
            value = getattr(self, name)
            paths = (value,) if isinstance(value, (str, Path)) else tuple(value)
            object.__setattr__(self, name, tuple(Path(p) for p in paths))
        provider = spec(self.provider)
        if self.region not in REGIONS:
            raise ConfigError(
                f"unknown region {self.region!r}; choose intl or cn", setting="region"
            )
        # Frozen: the defaults are filled in once, here, like the validation.
        if not self.base_url:
            object.__setattr__(self, "base_url", provider.base_url(self.region))
        if not self.model:
            object.__setattr__(self, "model", provider.model)
        if not self.voice:
            object.__setattr__(self, "voice", provider.voice)
        if self.concurrency == 0:
            object.__setattr__(self, "concurrency", provider.concurrency)
        if self.rpm == 0:
            object.__setattr__(self, "rpm", provider.rpm)
        if self.max_chars == 0:
            object.__setattr__(self, "max_chars", provider.max_chars)
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1", setting="concurrency")
        if not self.rpm > 0:
            raise ConfigError("rpm must be greater than 0", setting="rpm")
        check_model(self.provider, self.model)
        object.__setattr__(
            self,
            "voice",
            check_voice(self.provider, self.voice, model=self.model, base_url=self.base_url),
        )
        if self.dialogue_voice:
            object.__setattr__(
                self,
                "dialogue_voice",
                check_voice(
                    self.provider, self.dialogue_voice, model=self.model, base_url=self.base_url
                ),
            )
        check_lang(self.lang)
        if self.max_chars < 2:
            raise ConfigError(
                "max_chars must be at least 2 (a Han character counts 2)", setting="max_chars"
            )
        gaps = (self.gap_ms, self.chapter_gap_ms, self.paragraph_gap_ms, self.quote_gap_ms)
        if min(gaps) < 0:
            raise ConfigError("gaps cannot be negative")
        if max(gaps) > MAX_GAP_MS:
            raise ConfigError(f"gaps are at most {MAX_GAP_MS:,} ms (a minute)")
        if self.cache_max_bytes < 0:
            raise ConfigError("cache_max_bytes cannot be negative", setting="cache_max_bytes")
        if self.backoff_base < 0:
            raise ConfigError("backoff_base cannot be negative", setting="backoff_base")
        if self.stall_timeout is not None and not self.stall_timeout > 0:
            raise ConfigError("stall_timeout must be greater than 0", setting="stall_timeout")
        if self.retries < 1:
            raise ConfigError("retries must be at least 1", setting="retries")
        if self.qa not in QA_MODES:
            raise ConfigError(f"qa {self.qa}: choose on, strict or off", setting="qa")
        if self.qa_retries < 0:
            raise ConfigError("qa_retries cannot be negative", setting="qa_retries")
        if self.qa_budget < 0:
            raise ConfigError("qa_budget cannot be negative", setting="qa_budget")
        if self.store_url is not None and not self.store_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise ConfigError(
                f"store_url {masked_url(self.store_url)}: a store URL is "
                "postgresql://USER@HOST:PORT/DB",
                setting="store_url",
            )
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"base_url must start with http:// or https://, not {self.base_url!r}",
                setting="base_url",
            )
        if self.pacing_url is not None and not self.pacing_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError(
                f"pacing_url {masked_url(self.pacing_url)}: a pacing URL is "
                "redis://HOST:PORT/DB (or rediss://, unix://)",
                setting="pacing_url",
            )
        if self.api_key is not None and not (self.api_key.isascii() and self.api_key.isprintable()):
            # It goes into an HTTP header: a line break there is refused by aiohttp at the
            # first request, or worse, read by a server as a header of its own.
            raise ConfigError(
                "the API key holds a control character (a line break?) or non-ASCII text; "
                "check the variable or --api-key for stray characters"
            )
        if provider.key_required and not self.api_key:
            raise ConfigError(
                f"no API key: set {provider.key_variable} (or pass --api-key), "
                "or use --provider espeak to narrate offline"
            )

    @property
    def stall_seconds(self) -> float:
        """How long the run may go without a chunk progressing."""
        if self.stall_timeout is not None:
            return self.stall_timeout
        return default_stall_seconds(self.request_timeout)

    @property
    def store_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else default_cache_dir()


def default(name: str) -> Any:
    """The default of the setting ``name``, written once, in :class:`Settings` itself;
    the command line's defaults and help, the estimate and the pool read it here."""
    value = Settings.__dataclass_fields__[name].default
    if value is MISSING:
        raise KeyError(f"the setting {name!r} has no single default value")
    return value


def default_stall_seconds(request_timeout: float) -> float:
    """The stall timeout unless set: the slowest request and download (2 x
    ``request_timeout``) plus three minutes."""
    return 2 * request_timeout + 180.0


def check_lang(lang: str) -> None:
    """Accept ``auto`` or a known language code, with or without a region (``en-US``)."""
    value = lang.strip().lower()
    match = _LANG.fullmatch(value)
    if value == "auto" or (match and match["code"] in LANGUAGES):
        return
    raise ConfigError(
        f"lang {lang}: unknown language; use auto or one of {', '.join(LANGUAGES)}",
        setting="lang",
    )


def check_model(provider: str, model: str) -> None:
    """A model name must look like one; the offline voice has exactly one."""
    if not REGISTRY[provider].networked and model != REGISTRY[provider].model:
        raise ConfigError(
            f"model {model}: the {provider} provider has one model, {REGISTRY[provider].model}",
            setting="model",
        )
    if not _MODEL.fullmatch(model) or len(model) > 200:
        raise ConfigError(
            f"model {model!r}: not a model name (e.g. alibaba/qwen3-tts-flash)", setting="model"
        )


def check_voice(provider: str, voice: str, *, model: str, base_url: str) -> str:
    """The voice in the service's own spelling (``cherry`` becomes ``Cherry``).

    Known voices are matched case-insensitively. An unknown voice is an error where the
    list is complete (the registry says when: the qwen voices with the default model,
    eSpeak's, OpenAI's on OpenAI itself). Another model or an OpenAI-compatible server
    may have voices of its own, so there the name goes through as given (the first
    request tells).
    """
    entry = REGISTRY[provider]
    names = entry.voice_names()
    found = {name.casefold(): name for name in names}.get(voice.strip().casefold())
    if found is not None:
        return found
    if not entry.list_is_complete(model=model, base_url=base_url):
        return voice
    raise ConfigError(
        f"voice {voice}: {provider} has no such voice; choose one of {', '.join(names)} "
        f"(see `narrator voices --provider {provider}`)",
        setting="voice",
    )
