"""Stage 4, book: stitching segments, encoding the audiobook, subtitles and the podcast feed.

Internal: the library's API is the package root.
"""

__all__: list[str] = []
