"""The run report as a file: JSON (its data, read back later) or one self-contained HTML page."""

__all__: list[str] = []
