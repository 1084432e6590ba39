"""Several machines on one account: what their workers share (the pace, for a start)."""
