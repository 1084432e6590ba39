"""Stage 3, synthesis: the pool, rate limit, store, quality gate and the speech providers.

Internal: the library's API is the package root.
"""

__all__: list[str] = []
