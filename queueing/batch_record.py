"""What a batch is and where it stands: OpenAI's batch fields, its status and progress, and
the outcome of one line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel

from queueing import keys

_JSON_FIELDS = ("errors", "metadata")


class BatchStatus(StrEnum):
    """OpenAI's batch statuses."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once the batch can change no more."""
        return self in {
            BatchStatus.FAILED,
            BatchStatus.COMPLETED,
            BatchStatus.EXPIRED,
            BatchStatus.CANCELLED,
        }


class Stop(StrEnum):
    """Why a batch stops running lines before they all finished ('' while it runs)."""

    NONE = ""
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Batch(BaseModel):
    """A batch as stored in ``iq:batch:{id}``: OpenAI's fields plus its progress.

    ``expanded`` lines (up to byte ``offset`` of the input file) are queued as jobs;
    every line below ``low`` has its outcome recorded.
    """

    id: str
    tenant: str
    endpoint: str
    input_file_id: str
    completion_window: str
    status: BatchStatus
    created_at: int
    expires_at: int
    in_progress_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
    partitions: int = 1
    expanded: int = 0
    offset: int = 0
    low: int = 0
    stop: Stop = Stop.NONE

    def to_hash(self) -> dict[str, str]:
        """Flatten into Redis hash fields (JSON for nested values, no ``None``)."""
        out: dict[str, str] = {}
        for name, value in self.model_dump(mode="json").items():
            if value is None:
                continue
            out[name] = json.dumps(value) if name in _JSON_FIELDS else str(value)
        return out

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Batch:
        """Rebuild from Redis hash fields."""
        data: dict[str, Any] = dict(raw)
        for name in _JSON_FIELDS:
            if name in data:
                data[name] = json.loads(data[name])
        return cls.model_validate(data)

    def job_id(self, line: int) -> str:
        """The job id of ``line``."""
        return keys.line_job_id(self.id, line, self.partitions)


OutcomeKind = Literal["out", "err"]


@dataclass(frozen=True)
class Outcome:
    """A finished line: where it goes, its JSON line, and the tokens it used."""

    line: int
    kind: OutcomeKind
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
