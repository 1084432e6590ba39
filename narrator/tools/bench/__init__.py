"""Helpers of ``python -m narrator.tools.bench``: inputs, measured child processes, the cases."""

__all__: list[str] = []
