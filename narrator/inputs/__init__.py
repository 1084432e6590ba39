"""Stage 1, inputs: finding, fetching and reading documents into title + chapters.

Internal: the library's API is the package root.
"""

__all__: list[str] = []
