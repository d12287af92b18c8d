"""Job schemas: what a client sends, what it sees, and what the queue stores."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from queueing.keys import JobClass

_JSON_FIELDS = ("result", "usage", "params", "metadata", "images")


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


class TextPart(BaseModel):
    """A text part of a message's content."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    """Where an image comes from: a ``data:`` URL, an uploaded file's id, or an http(s) URL."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=1)]
    detail: Literal["auto", "low", "high"] = "auto"


class ImagePart(BaseModel):
    """An image part of a user message's content (OpenAI's ``image_url`` part)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["image_url"]
    image_url: ImageURL


class FunctionCall(BaseModel):
    """A function the model called, with its arguments as a JSON text."""

    name: str
    arguments: str


class ToolCall(BaseModel):
    """One tool call, in OpenAI's shape."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


# Fields of an OpenAI reply's message that mean nothing when they are null.
_EMPTY_OK = frozenset({"refusal", "annotations", "audio", "function_call"})


class ChatMessage(BaseModel):
    """One chat turn: text (or text parts), from any OpenAI role, with tool calls or results."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[Annotated[TextPart | ImagePart, Field(discriminator="type")]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_response_fields(cls, data: Any) -> Any:
        """A reply's message sent back as history may carry these, empty; drop them then."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (k in _EMPTY_OK and v is None)}
        return data

    @model_validator(mode="after")
    def _has_content(self) -> ChatMessage:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs content")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        if self.images and self.role != "user":
            raise ValueError("only user messages carry image parts")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id it answers")
        return self

    @property
    def text(self) -> str:
        """The text of the content as one string (image parts left out)."""
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content if isinstance(part, TextPart))
        return self.content or ""

    @property
    def images(self) -> list[str]:
        """The URLs of the content's image parts, in order."""
        if not isinstance(self.content, list):
            return []
        return [part.image_url.url for part in self.content if isinstance(part, ImagePart)]


def token_id_keys(bias: dict[str, float]) -> dict[str, float]:
    """``bias`` if every key is a token id (``logit_bias``), else ValueError."""
    for key in bias:
        if not key.isdigit():
            raise ValueError(f"keys are token ids, and {key!r} is not one")
    return bias


class ToolParsing(BaseModel):
    """How the worker turns the model's output into tool calls.

    ``auto``: parsed from free text by the model's tool parser; ``required`` and ``named``:
    the output is constrained to JSON (a list of calls, or one function's arguments).
    """

    model_config = ConfigDict(extra="forbid")

    mode: Literal["auto", "required", "named"]
    function: str | None = None
    parallel: bool = True
    parser: str = "hermes"


class SamplingParams(BaseModel):
    """Generation parameters, validated before anything is queued (vLLM's meanings)."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: Annotated[int, Field(ge=1, le=65_536)] = 256
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    stop: list[str] = Field(default_factory=list, max_length=8)
    seed: int | None = None
    ignore_eos: bool = False
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    repetition_penalty: Annotated[float, Field(gt=0.0, le=2.0)] = 1.0
    # Token id (as text, the JSON object key) -> bias added to its logit.
    logit_bias: dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]] = Field(
        default_factory=dict, max_length=300
    )
    # Log probabilities of each output token and of this many top alternatives (0: none).
    logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    json_object: bool = False
    json_schema: dict[str, Any] | None = None
    tool_parsing: ToolParsing | None = None

    @field_validator("logit_bias")
    @classmethod
    def _token_ids(cls, value: dict[str, float]) -> dict[str, float]:
        return token_id_keys(value)

    @model_validator(mode="after")
    def _one_constraint(self) -> SamplingParams:
        if self.json_object and self.json_schema is not None:
            raise ValueError("give json_object or json_schema, not both")
        parsing = self.tool_parsing
        if parsing is not None and parsing.mode != "auto" and self.json_schema is None:
            raise ValueError("tool_parsing required or named needs the calls' json_schema")
        return self


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


class TopLogprob(BaseModel):
    """A token and its log probability."""

    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    """An output token's log probability, and the most likely alternatives at its place."""

    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class JobResult(BaseModel):
    """What the engine produced: text, and tool calls and log probabilities when asked."""

    text: str
    finish_reason: str | None = None
    tool_calls: list[ToolCall] | None = None
    logprobs: list[TokenLogprob] | None = None


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
    # Why a queued job is not running yet, e.g. "waiting for a worker" (not stored).
    status_detail: str | None = Field(default=None, exclude_if=lambda v: v is None)
    # The model asked for, when the job went to that model's fallback (``model``) instead.
    fallback_from: str | None = Field(default=None, exclude_if=lambda v: v is None)


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
    # The job's images, in the order of their placeholders in ``prompt``: their sources as
    # sent (data: URL, file id, http(s) URL) until the preprocess tier has prepared them.
    images: list[str] = Field(default_factory=list)
    # The code of ``error`` when the client's input is to blame (invalid_image), else unset.
    error_code: str | None = None

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
