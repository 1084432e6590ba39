"""What kind of image a cover is, told from its first bytes."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError

__all__ = ["image_mime"]


def image_mime(path: Path) -> str:
    """``image/jpeg`` or ``image/png``, told from the file's first bytes."""
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ConfigError(f"--cover {path}: {exc.strerror or exc}") from exc
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    raise ConfigError(f"--cover {path}: not a JPEG or PNG image")
