"""Above the stages: a run. The pipeline (the front door: ``narrate``, ``narrate_many``,
``narrate_sync``), one document through the pool, whether a book is up to date, what a
run reports, batches of inputs, ``check`` and ``say``."""

__all__: list[str] = []
