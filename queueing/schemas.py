"""Job schemas: what a client sends, what it sees, and what the queue stores."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from queueing.keys import JobClass

_JSON_FIELDS = ("result", "usage", "params", "metadata")


class JobStatus(StrEnum):
    """Lifecycle of a job."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once the job can change no more."""
        return self in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


class ChatMessage(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class SamplingParams(BaseModel):
    """Generation parameters, validated before anything is queued."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: Annotated[int, Field(ge=1, le=65_536)] = 256
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    stop: list[str] = Field(default_factory=list, max_length=8)
    seed: int | None = None
    ignore_eos: bool = False


class JobCreate(BaseModel):
    """Body of ``POST /v1/jobs``: a prompt or chat messages, and how to run them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str | None = None
    prompt: Annotated[str, Field(min_length=1)] | None = None
    messages: Annotated[list[ChatMessage], Field(min_length=1)] | None = None
    params: SamplingParams = Field(default_factory=SamplingParams)
    job_class: JobClass = Field(default=JobClass.STANDARD, alias="class")
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    metadata: dict[str, str] = Field(default_factory=dict, max_length=16)
    # False: no token events while it runs, one with the whole text at the end (cheaper
    # when the caller only polls for the result).
    stream_tokens: bool = True

    @model_validator(mode="after")
    def _one_input(self) -> JobCreate:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        return self


class Usage(BaseModel):
    """Tokens the engine consumed and produced."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class JobResult(BaseModel):
    """What the engine produced."""

    text: str
    finish_reason: str | None = None


class JobPublic(BaseModel):
    """A job as its owner sees it."""

    id: str
    object: Literal["job"] = "job"
    model: str
    status: JobStatus
    job_class: JobClass = Field(serialization_alias="class")
    estimated_units: float
    attempts: int = 0
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    result: JobResult | None = None
    usage: Usage | None = None
    error: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class JobRecord(JobPublic):
    """The whole job as stored in ``iq:job:{id}``."""

    tenant: str
    band: int
    prompt_tokens: int
    prompt: str
    params: SamplingParams
    stream_tokens: bool = True
    worker: str | None = None
    cancel: bool = False
    stream: str | None = None
    entry: str | None = None

    def to_hash(self) -> dict[str, str]:
        """Flatten into Redis hash fields (JSON for nested values, no ``None``)."""
        out: dict[str, str] = {}
        for name, value in self.model_dump(mode="json").items():
            if value is None:
                continue
            if isinstance(value, dict | list):
                out[name] = json.dumps(value, separators=(",", ":"))
            elif isinstance(value, bool):
                out[name] = "1" if value else "0"
            else:
                out[name] = str(value)
        return out

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> JobRecord:
        """Rebuild from Redis hash fields."""
        data: dict[str, Any] = dict(raw)
        for name in _JSON_FIELDS:
            if name in data:
                data[name] = json.loads(data[name])
        data["cancel"] = data.get("cancel") == "1"
        return cls.model_validate(data)

    def public(self) -> JobPublic:
        """The owner's view."""
        return JobPublic.model_validate(self.model_dump(include=set(JobPublic.model_fields)))
