"""Stage 3, synthesis: the pool, rate limit, store, quality gate and the speech providers."""
