"""How a document's run ended, as the reports, the summary table and the JSON say it."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Status"]


class Status(StrEnum):
    """A document's outcome. The values are what the table and the JSON report show."""

    DONE = "done"
    UP_TO_DATE = "up-to-date"  # made before from the same text and settings
    FAILED = "failed"
    SKIPPED = "skipped"  # nothing to narrate, or not a readable document
    STOPPED = "stopped"  # the run stopped before the document finished

    @property
    def ok(self) -> bool:
        """Whether the document needs nothing more: the run did not fail it."""
        return self in (Status.DONE, Status.UP_TO_DATE, Status.SKIPPED)
