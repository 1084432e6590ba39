"""ffmpeg fed raw PCM through a pipe while the book is still being synthesized.

The encoder starts with the book's first piece and encodes as pieces arrive, so once
the last one is in only its tail is left to encode. Its stderr goes to an unnamed
temporary file, not a pipe: nobody has to drain it while samples are written.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import AudioError
from ..util.atomic import temp_beside
from ..util.wav import WavInfo
from .ffmpeg import PCM_CODECS, ffmpeg_exe, last_words, time_bound

__all__: list[str] = []

_RAW = {1: "u8", 2: "s16le", 3: "s24le", 4: "s32le"}  # ffmpeg's raw PCM demuxers


def stream_args(fmt: str, width: int) -> list[str]:
    """ffmpeg's output options for ``fmt`` while streaming: the codec, no tags (they are
    written at the end, when the whole book is known), no ``faststart`` (the remux at the
    end does that)."""
    from .encode import FORMATS  # encode builds on this module

    spec = FORMATS[fmt]
    codec = list(spec.codec)
    if "-movflags" in codec:
        at = codec.index("-movflags")
        del codec[at : at + 2]
    if fmt == "wav":
        codec = ["-c:a", PCM_CODECS[width], "-rf64", "auto"]
    return ["-map_metadata", "-1", *codec, "-f", spec.muxer]


class Encoder:
    """One ffmpeg reading PCM in ``pcm``'s format from its stdin; ``args`` are its
    output options and output (a path, or ``-`` with ``-f null``)."""

    def __init__(
        self, pcm: WavInfo, args: Sequence[str], *, what: str, path: Path | None = None
    ) -> None:
        self.what = what
        self.path = path  # what it writes, if a file
        self.seconds = 0.0  # audio fed so far, for the time limit at the end
        self._rate = pcm.rate * pcm.frame_size
        self._err = tempfile.TemporaryFile()
        cmd = [
            ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", "-y",
            "-f", _RAW[pcm.width], "-ar", str(pcm.rate), "-ac", str(pcm.channels),
            "-i", "pipe:0", *args,
        ]  # fmt: skip
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._err,
                # Its own process group: a Ctrl-C or a signal to narrator's group is for
                # narrator, which ends the book cleanly; ffmpeg must not die under it.
                process_group=0,
            )
        except OSError as exc:
            self._err.close()
            raise AudioError(f"cannot run ffmpeg ({cmd[0]}): {exc.strerror or exc}") from exc

    def write(self, data: bytes | memoryview, /) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            stdin.write(data)
        except (BrokenPipeError, ValueError) as exc:  # ffmpeg gave up: say why
            self._proc.wait()
            raise self._failure() from exc
        self.seconds += len(data) / self._rate

    def close(self) -> str:
        """Let ffmpeg finish; return its stderr, or raise AudioError with its last words."""
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            try:
                stdin.close()
            except BrokenPipeError:
                pass  # it already stopped; its return code says why
            limit = time_bound(self.seconds)
            try:
                code = self._proc.wait(timeout=limit)
            except subprocess.TimeoutExpired as exc:
                self.kill()
                raise AudioError(
                    f"ffmpeg could not {self.what}: no result after {limit:.0f} s"
                ) from exc
            if code:
                raise self._failure()
            return self._stderr()
        finally:
            self._err.close()

    def end(self) -> None:
        """The last sample is in: let ffmpeg finish the file."""
        self.close()

    def seal(self, tags: Mapping[str, str]) -> None:
        """Nothing to do: tags are added to the encoded file afterwards."""

    def kill(self) -> None:
        """Stop ffmpeg now (the book is abandoned)."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        if self._proc.stdin is not None:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        self._err.close()

    def _stderr(self) -> str:
        self._err.seek(0)
        return self._err.read().decode("utf-8", "replace")

    def _failure(self) -> AudioError:
        words = last_words(self._stderr()) or self._proc.returncode
        return AudioError(f"ffmpeg could not {self.what}: {words}")


def temp_part(output: Path, number: int) -> Path:
    """A hidden name beside ``output`` for part ``number`` while it is being written
    (this process's: a later run removes it if this one is killed outright)."""
    return temp_beside(output).with_suffix(f".part{number}.tmp")
