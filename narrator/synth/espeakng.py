"""An offline voice: eSpeak NG, loaded with :mod:`ctypes` from the ``espeakng-loader`` wheel.

It gives the emulator (and anyone without an API key) real, intelligible speech in
every language the service supports, with one distinct eSpeak voice per AIML voice.

eSpeak NG keeps all its state in globals (the current voice, the parameters, the
callback) and is not thread-safe, so one process-wide :class:`Engine` serialises
every call behind one lock and initialises the library once, on first use.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

from ..chunks.language import script_language
from ..errors import VoiceFailed
from ..util.registry import ESPEAK_VOICES

__all__ = ["VOICES", "Engine", "VoiceInfo", "get_engine"]


@dataclass(frozen=True, slots=True)
class VoiceInfo:
    """An AIML voice and the eSpeak NG settings that stand in for it."""

    name: str  # the AIML voice name, e.g. "Cherry"
    description: str  # e.g. "female, English/Chinese"
    espeak_variant: str  # a file in espeak-ng-data/voices/!v, e.g. "f3"
    pitch: int  # eSpeak base pitch, 0-100 (50 is the voice's own)
    rate: int  # words per minute


# Each qwen voice's eSpeak NG variant, base pitch and rate (words per minute).
_VARIANTS = {
    "Cherry": ("f3", 60, 175),
    "Ethan": ("m3", 45, 170),
    "Nofish": ("m1", 52, 180),
    "Jennifer": ("f1", 55, 170),
    "Ryan": ("m2", 48, 185),
    "Katerina": ("f4", 42, 165),
    "Elias": ("f2", 50, 160),
    "Jada": ("f5", 65, 180),
    "Dylan": ("m4", 55, 175),
    "Sunny": ("Annie", 58, 170),
    "Li": ("m5", 40, 160),
    "Marcus": ("m6", 35, 165),
    "Roy": ("m7", 50, 175),
    "Peter": ("m8", 60, 180),
    "Rocky": ("Andy", 45, 170),
    "Kiki": ("linda", 62, 175),
    "Eric": ("john", 52, 170),
}

#: The 17 voices of ``alibaba/qwen3-tts-flash``, each with its own eSpeak variant (their
#: names and descriptions are the registry's: :data:`narrator.util.registry.ESPEAK_VOICES`).
VOICES: dict[str, VoiceInfo] = {
    v.name: VoiceInfo(v.name, v.description, *_VARIANTS[v.name]) for v in ESPEAK_VOICES
}

# Constants from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # without it a missing data file calls exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
# espeakLINELENGTH: lines shorter than this end a clause (a pause). Chunk texts keep a
# newline only where a line means a line (a list item, verse: narrator.inputs.lines).
_LINELENGTH, _EVERY_LINE = 13, 1_000_000
_EE_OK = 0
# eSpeak's name for a language where it differs from the ISO 639-1 code narrator uses.
_ESPEAK_NAMES = {"zh": "cmn"}

# int cb(short *wav, int numsamples, espeak_EVENT *events); events are not used.
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class Engine:
    """eSpeak NG synthesis, safe to call from any thread.

    Use :func:`get_engine` rather than building one: the library has one global state,
    so two engines in a process would fight over it.
    """

    sample_rate: int

    def __init__(self) -> None:
        # Imported here so that importing narrator never needs the wheel.
        import espeakng_loader

        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise VoiceFailed(
                f"eSpeak NG failed to initialise (code {rate}); "
                "reinstall the espeakng-loader package"
            )
        self.sample_rate = rate
        # ctypes does not keep the thunk alive for C: if it were collected, the next
        # synthesis would call freed memory.
        self._callback = _SynthCallback(self._on_samples)
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib

    def _on_samples(self, wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
        # Called by eSpeak inside espeak_Synth, on the synthesising thread, with the
        # lock held; a NULL pointer marks the end. An exception here could not cross
        # the C frames, so nothing here may raise.
        if wav and count > 0:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # 0 = continue

    def _select_voice(self, lang: str, info: VoiceInfo) -> None:
        for name in (f"{lang}+{info.espeak_variant}", lang, "en"):
            if self._lib.espeak_SetVoiceByName(name.encode()) == _EE_OK:
                break
        else:
            raise VoiceFailed(f"eSpeak NG has no voice for {lang!r}, not even English")
        # Set after the voice: selecting a voice may reset them.
        self._lib.espeak_SetParameter(_RATE, info.rate, 0)
        self._lib.espeak_SetParameter(_PITCH, info.pitch, 0)
        self._lib.espeak_SetParameter(_RANGE, 50, 0)
        self._lib.espeak_SetParameter(_VOLUME, 100, 0)
        self._lib.espeak_SetParameter(_LINELENGTH, _EVERY_LINE, 0)

    def synthesize(self, text: str, voice: str = "Cherry") -> bytes:
        """Speak ``text`` with the stand-in for AIML ``voice``.

        Returns raw 16-bit little-endian mono PCM at :attr:`sample_rate` (``b""`` for
        empty text). Raises :class:`ValueError` for a voice that is not in
        :data:`VOICES`, :class:`VoiceFailed` when eSpeak NG cannot speak it.
        """
        info = VOICES.get(voice)
        if info is None:
            raise ValueError(f"unknown voice {voice!r}; choose one of {', '.join(VOICES)}")
        text = text.replace("\0", "")
        if not text.strip():
            return b""
        encoded = text.encode("utf-8") + b"\0"
        with self._lock:
            self._chunks = []
            try:
                lang = script_language(text)
                self._select_voice(_ESPEAK_NAMES.get(lang, lang), info)
                err = self._lib.espeak_Synth(
                    encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                )
                self._lib.espeak_Synchronize()
                if err != _EE_OK:
                    raise VoiceFailed(f"eSpeak NG failed to synthesize (code {err})")
                return b"".join(self._chunks)
            finally:
                self._chunks = []


_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine() -> Engine:
    """The process-wide :class:`Engine`, initialised on first call (thread-safe)."""
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = Engine()
    return _engine
