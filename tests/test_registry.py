"""The provider registry: a new provider is one class and one registry entry.

The fixture below is the whole of a new provider: :class:`HumProvider` (its module,
here this test file), one :class:`ProviderSpec` and one ``register`` call with both.
Nothing else is edited, yet settings fill in its defaults and check its voices, a real
run narrates with it, and the command line offers it in ``--provider``, ``--help``,
``voices`` and ``estimate``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import narrator
from narrator.cli import main
from narrator.errors import BadRequest, ConfigError
from narrator.synth.providers import Audio, Voice, make_provider
from narrator.synth.providers.registry import CLASSES, provider_class, register
from narrator.util.registry import REGISTRY, ProviderSpec
from narrator.util.wav import read_wav_info, tone_pcm, wav_bytes

RATE = 16_000
TEXT = " ".join(f"Sentence number {n} hums along for a while." for n in range(12))


class HumProvider:
    """A service that hums: each character is 10 ms of a tone, at the voice's pitch."""

    name = "hum"
    max_chars = 120  # below the run's 600: the registry's class sets the chunk size
    voices = (Voice("Low", "a 220 Hz hum"), Voice("High", "a 440 Hz hum"))
    billing_chars = staticmethod(len)

    def __init__(self, *, model: str, **_options: object) -> None:
        self.model = model
        self.identity = f"hum|{model}"

    async def synthesize(self, text: str, *, voice: str, request_id: str) -> Audio:
        freq = 220.0 if voice == "Low" else 440.0
        return Audio(data=wav_bytes(tone_pcm(0.01 * len(text), RATE, freq=freq), RATE))

    async def download(
        self, url: str, dest: Path, *, max_bytes: int, keep: int = 0
    ) -> bytes | None:
        raise BadRequest("the hum provider has no links")

    async def aclose(self) -> None:
        return None


@pytest.fixture
def hum() -> Iterator[ProviderSpec]:
    """The one registry entry a new provider needs."""
    entry = ProviderSpec(
        "hum",
        model="hum-1",
        voice="Low",
        rpm=600.0,
        concurrency=2,
        base_urls={"intl": "http://hum.invalid"},
        voices=HumProvider.voices,
        key_variable="HUM_KEY",
        price_per_10k_chars=0.5,
        voices_complete="always",
        description="a test provider",
        networked=False,
    )
    with register(entry, HumProvider):
        yield entry
    assert "hum" not in REGISTRY and "hum" not in CLASSES


def test_settings_fill_in_and_check_what_the_entry_declares(hum: ProviderSpec) -> None:
    settings = narrator.Settings(provider="hum", api_key="k")
    assert (settings.model, settings.voice, settings.rpm, settings.concurrency) == (
        "hum-1",
        "Low",
        600.0,
        2,
    )
    assert narrator.Settings(provider="hum", api_key="k", voice="high").voice == "High"
    with pytest.raises(ConfigError, match=r"^voice Nobody: hum has no such voice") as info:
        narrator.Settings(provider="hum", api_key="k", voice="Nobody")
    assert info.value.setting == "voice"
    with pytest.raises(ConfigError, match="HUM_KEY"):
        narrator.Settings(provider="hum")
    provider = make_provider(settings)
    assert isinstance(provider, HumProvider) and provider.model == "hum-1"
    with pytest.raises(ConfigError, match="already registered"), register(hum, HumProvider):
        pass


def test_a_library_run_narrates_with_it(hum: ProviderSpec, tmp_path: Path) -> None:
    settings = narrator.Settings(provider="hum", api_key="k", cache_dir=tmp_path / "cache")
    report = narrator.narrate_sync(TEXT, tmp_path / "hum.wav", settings)
    # 500 billing characters, at most 120 a request: the class's limit split the text.
    assert report.status == "done" and report.chunks >= 5
    info = read_wav_info(tmp_path / "hum.wav")
    assert info.rate == RATE
    assert info.seconds > 0.01 * len(TEXT.replace(" ", ""))


def test_the_command_line_offers_it(
    hum: ProviderSpec,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = tmp_path / "hum.txt"
    source.write_text(TEXT, encoding="utf-8")

    assert main(["voices", "--provider", "hum"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[hum] default voice Low; 600 requests/minute, 2 in flight\n")
    assert "High       a 440 Hz hum" in out

    with pytest.raises(SystemExit):
        main(["narrate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "hum: 600 requests/minute, 2 in flight" in help_text
    assert "{aimlapi,dashscope,openai,espeak,hum}" in help_text

    assert main(["estimate", str(source), "--provider", "hum"]) == 0
    out = capsys.readouterr().out
    total = re.search(r"total \(1 document\)\s+(\d+)\s+(\d+)\s+\$([\d.]+)", out)
    assert total is not None, out
    chunks, characters, cost = int(total[1]), int(total[2]), float(total[3])
    # Split at the class's 120 characters, not the run's 600; priced at the entry's
    # price, not the flag's default.
    assert chunks >= math.ceil(characters / 120) > 1 and characters < len(TEXT)
    assert cost == round(characters / 10_000 * 0.5, 2)
    assert "Assumes $0.50 per 10,000 billing characters" in out

    # The key comes from the entry's variable; the flag is named where the library
    # names its setting.
    output = tmp_path / "out.wav"
    common = ["narrate", str(source), "-o", str(output), "--provider", "hum", "--quiet"]
    common += ["--cache-dir", str(tmp_path / "cache")]
    assert main([*common, "--voice", "Nobody"]) == 2
    assert "narrator: --voice Nobody: hum has no such voice" in capsys.readouterr().err
    assert main(common) == 2
    assert "set HUM_KEY" in capsys.readouterr().err
    monkeypatch.setenv("HUM_KEY", "k")
    assert main(common) == 0
    assert read_wav_info(output).rate == RATE


def test_the_command_line_has_no_defaults_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each default is written once, in Settings: a run with no flags is a default Settings.
    from narrator.cli.build import make_settings
    from narrator.cli.parser import parse

    monkeypatch.chdir(tmp_path)  # no narrator.toml
    for provider in REGISTRY:
        args = parse(["narrate", "book.txt", "--provider", provider])
        built = make_settings(args, {"AIMLAPI_KEY": "k", "DASHSCOPE_API_KEY": "k"})
        key = (
            "k" if REGISTRY[provider].key_variable in ("AIMLAPI_KEY", "DASHSCOPE_API_KEY") else None
        )
        assert built == narrator.Settings(provider=provider, api_key=key, cache_dir=built.cache_dir)


def test_the_settings_know_every_format_the_encoder_writes() -> None:
    # AudiobookOptions (in settings, which imports no stage) names the formats that
    # book.encode knows how to write; the two lists must not drift apart.
    from narrator.book.encode import FORMATS
    from narrator.settings import AUDIO_FORMATS

    assert tuple(FORMATS) == AUDIO_FORMATS


def test_the_library_estimate_reads_the_provider(hum: ProviderSpec) -> None:
    from narrator.estimate import estimate
    from narrator.inputs.documents import parse_text

    doc = parse_text(TEXT)
    hummed = estimate([doc], provider="hum", price_per_10k_chars=99.0)
    # The class's limit and count, the entry's pace and price (its own, not the argument).
    assert hummed.chunks >= math.ceil(hummed.billing_characters / 120) > 1
    assert (hummed.rpm, hummed.concurrency, hummed.price_per_10k_chars) == (600.0, 2, 0.5)
    assert hummed.cost == pytest.approx(hummed.billing_characters / 10_000 * 0.5)
    default = estimate([doc])  # the default provider's: one 600-character chunk or so
    assert (default.rpm, default.concurrency) == (60.0, 4) and default.chunks < hummed.chunks
    assert estimate([doc], provider="espeak").cost == 0


def test_the_chunk_size_is_the_providers_unless_asked(tmp_path: Path) -> None:
    # OpenAI takes 4,096 characters a request: at its per-request limit 600-character
    # chunks cost 7x the requests (bench "chunk size"); the Qwen services take 600.
    from narrator.estimate import estimate
    from narrator.inputs.documents import parse_text

    assert narrator.Settings(provider="openai").max_chars == REGISTRY["openai"].max_chars == 4096
    assert narrator.Settings(provider="aimlapi", api_key="k").max_chars == 600
    assert narrator.Settings(provider="openai", max_chars=900).max_chars == 900
    doc = parse_text("A sentence that goes on for a while, as sentences do. " * 150)
    long = estimate([doc], provider="openai")
    short = estimate([doc], provider="openai", max_chars=600)
    assert long.chunks < short.chunks and short.chunks >= math.ceil(short.billing_characters / 600)


def test_the_two_halves_of_the_registry_agree() -> None:
    # The data (util.registry, read by settings) and the classes (synth.providers.registry).
    assert list(CLASSES) == list(REGISTRY)
    for name, entry in REGISTRY.items():
        cls = provider_class(name)
        assert tuple(cls.voices) == entry.voices, name
        assert entry.voice in entry.voice_names(), name
        assert entry.max_chars <= cls.max_chars, name
    with pytest.raises(ConfigError, match="unknown provider"):
        provider_class("nobody")


def test_the_layout_test_sees_every_provider_class() -> None:
    # No class is named by a string: each is an import the layout test reads.
    from .test_layout import MODULES, imported

    arrows = imported(
        "narrator.synth.providers.registry", MODULES["narrator.synth.providers.registry"]
    )
    assert {cls.__module__ for cls in CLASSES.values()} <= arrows
    registry = (Path(narrator.__file__).parent / "util" / "registry.py").read_text()
    assert "import_module" not in registry and not re.search(r'"narrator\.[\w.]+:\w+"', registry)
