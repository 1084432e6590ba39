"""Stage 1, inputs: finding, fetching and reading documents into title + chapters."""
