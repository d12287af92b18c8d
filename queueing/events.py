"""A job's event stream entries as the API serves them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from queueing.schemas import JobStatus

_TERMINAL = frozenset(status.value for status in JobStatus if status.terminal)


class EventType(StrEnum):
    """Kinds of entries in ``iq:ev:{id}``."""

    STATUS = "status"
    TOKENS = "tokens"
    RESULT = "result"
    ERROR = "error"


@dataclass(frozen=True)
class JobEvent:
    """One event: its stream id (the SSE ``id``), kind and JSON data."""

    id: str
    type: str
    data: str

    @property
    def terminal(self) -> bool:
        """True for the status event that ends the job's stream."""
        if self.type != EventType.STATUS:
            return False
        return json.loads(self.data).get("status") in _TERMINAL
