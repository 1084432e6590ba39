"""narrator: long text to audiobooks through remote text-to-speech services."""
