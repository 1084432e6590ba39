"""Outside the library's core: the loopback API emulator (``narrator serve``) and the bench."""

__all__: list[str] = []
