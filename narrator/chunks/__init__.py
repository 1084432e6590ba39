"""Stage 2, chunks: documents split into chunks by billing characters; language detection.

Internal: the library's API is the package root.
"""

__all__: list[str] = []
