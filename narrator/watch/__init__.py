"""``narrator watch``: an inbox narrated as documents land, and its queue and schedule."""

__all__: list[str] = []
