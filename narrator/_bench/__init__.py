"""Helpers of ``python -m narrator.bench``: inputs, measured child processes, the cases."""
