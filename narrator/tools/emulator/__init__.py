"""A local stand-in for the TTS services' endpoints, faithful enough to test against.

It speaks HTTP like the real services (the AIML API's ``POST /v1/tts`` with model
``alibaba/qwen3-tts-flash``, DashScope's and OpenAI's endpoints, signed audio links
that expire) and can misbehave on purpose, so the client's handling of every
documented failure is exercised over a real socket. ``narrator serve`` runs it; tests
start it on a loopback port.

Routes::

    POST <the dialect's path>  the endpoint; see "Order of checks" below
    GET  /audio/<id>.wav       the signed links it hands out (object-storage style)
    GET  /_emulator/stats      the :class:`EmulatorStats` as JSON (not in the real API;
                               it needs the key, as the endpoint does)

Order of checks for the endpoint, each refusal in the selected API's error shape:

1. ``Authorization: Bearer <key>`` missing or wrong: 401.
2. Request rate over ``rpm`` (a token bucket holding ``max(1, rpm/60)`` tokens,
   refilled at ``rpm/60`` per second, because the upstream enforces its limit per
   second): 429. Requests in flight over ``max_concurrency``: 429.
3. Body not a JSON object matching the published schema: 400. For the AIML API,
   ``text`` must be 1-600 *billing* characters (Han counts 2), ``voice`` one of the 17
   voices; unknown fields are ignored.
4. Credits spent (``billed_characters >= credits``): 403. Like a prepaid balance, a
   request is accepted while any credit is left, so the last one may overshoot.
5. ``latency`` seconds plus ``latency_per_char`` per billing character pass (counted
   in flight), then the fault knobs: a random 500/502/503/504 (``fail_rate``) or a
   connection closed with no response at all (``drop_rate``).
6. Success: the characters are billed and the audio (WAV, 24 kHz mono 16-bit, like
   the real service) is returned in the configured shape. ``mixed`` takes the n-th
   success's shape from object, string, binary in turn and its status from 201, 200
   in turn. With ``bad_audio_rate``, a success may carry bad audio, billed all the
   same: silent (a faint hiss), cut (its first 40%) or runaway (3 s of silence, then
   8 s of noise).

The modules:

- :mod:`.config`: :class:`EmulatorConfig` (the knobs) and :class:`EmulatorStats`.
- :mod:`.server`: the checks above, the app, :func:`start_emulator` and :func:`serve`.
- :mod:`.dialect`: what a dialect declares; one module per API with its route, refusal
  table, validator and answer shapes: :mod:`.aimlapi` (the default), :mod:`.dashscope`,
  :mod:`.openai`, registered in :mod:`.dialects`. Only the selected API's endpoint is
  routed, so a client pointed at the wrong one gets 404.
- :mod:`.links`: the signed, expiring audio links; :mod:`.audio`: speech, tones, bad audio.
"""

from .aimlapi import MODEL
from .audio import SAMPLE_RATE
from .config import BAD_AUDIO_KINDS, EmulatorConfig, EmulatorStats, billed_key
from .dialects import DIALECTS
from .server import STATS, RunningEmulator, create_app, serve, start_emulator

__all__ = [
    "BAD_AUDIO_KINDS",
    "DIALECTS",
    "MODEL",
    "SAMPLE_RATE",
    "STATS",
    "EmulatorConfig",
    "EmulatorStats",
    "RunningEmulator",
    "billed_key",
    "create_app",
    "serve",
    "start_emulator",
]
