"""Stage 2, chunks: documents split into chunks by billing characters; language detection."""
