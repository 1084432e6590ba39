"""Small helpers every stage may use: text sanitizing, network policy, disk space, folders, WAV."""
