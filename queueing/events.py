"""A job's event stream entries as the API serves them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EventType(StrEnum):
    """Kinds of entries in ``iq:ev:{id}``."""

    STATUS = "status"
    TOKENS = "tokens"
    RESULT = "result"
    ERROR = "error"


TERMINAL_STATUSES = frozenset({'"succeeded"', '"failed"', '"cancelled"'})


@dataclass(frozen=True)
class JobEvent:
    """One event: its stream id (the SSE ``id``), kind and JSON data."""

    id: str
    type: str
    data: str

    @property
    def terminal(self) -> bool:
        """True for the status event that ends the job's stream."""
        return self.type == EventType.STATUS and any(s in self.data for s in TERMINAL_STATUSES)
