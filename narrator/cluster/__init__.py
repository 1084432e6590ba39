"""Several machines on one account: what their workers share (the pace, for a start)."""

__all__: list[str] = []
