"""Small helpers every stage may use: text sanitizing, network policy, disk space, folders,
WAV, atomic writes.

Internal: the library's API is the package root.
"""

__all__: list[str] = []
