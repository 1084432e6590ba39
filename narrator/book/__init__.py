"""Stage 4, book: stitching segments, encoding the audiobook, subtitles and the podcast feed."""
