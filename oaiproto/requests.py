"""OpenAI's chat and completions request bodies, mapped onto inferq's sampling parameters.

Their fields are the honoured ones; the refused ones are in :mod:`oaiproto.fields`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from oaiproto.fields import CHAT_REFUSED, COMPLETION_REFUSED, check_extra
from oaiproto.tools import FunctionName, ToolChoice, ToolDef, check_schema, tools_schema
from queueing.errors import InvalidRequest
from queueing.schemas import ChatMessage, SamplingParams, ToolParsing, token_id_keys

MAX_STOP = 4


class StreamOptions(BaseModel):
    """``stream_options`` as OpenAI defines it."""

    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False
    include_obfuscation: bool | None = None  # OpenAI's padding of chunks: there is none here


class JsonSchemaFormat(BaseModel):
    """``response_format.json_schema``: a named JSON schema the reply must follow."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """``response_format``: text, any JSON object, or JSON following a schema."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class _Common(BaseModel):
    # Fields beyond the declared ones are kept so that :meth:`check_fields` can name them.
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    model: Annotated[str, Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=1, le=65_536)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0.0, le=2.0)] | None = None
    logit_bias: dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]] | None = None
    ignore_eos: bool = False  # vLLM's extension: generate max_tokens whatever comes
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _token_ids(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return None if value is None else token_id_keys(value)

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("inferq returns one choice per request: n must be 1 (its limit)")
        return value

    def _check_stream_options(self) -> None:
        if self.stream_options is not None and not self.stream:
            raise InvalidRequest(
                "stream_options: only allowed when stream is true", param="stream_options"
            )

    def _sampling(self, default_max_tokens: int, **more: Any) -> SamplingParams:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return SamplingParams(
            max_tokens=self.max_tokens or default_max_tokens,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            stop=stop,
            seed=self.seed,
            ignore_eos=self.ignore_eos,
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
            repetition_penalty=self.repetition_penalty or 1.0,
            logit_bias=self.logit_bias or {},
            **more,
        )

    @property
    def include_usage(self) -> bool:
        """Whether a streamed response ends with a usage chunk."""
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)

    @property
    def metadata(self) -> dict[str, str]:
        """What the job records of the caller's labels."""
        return {"user": self.user} if self.user else {}


class ChatCompletionRequest(_Common):
    """Body of ``POST /v1/chat/completions``."""

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: Annotated[int, Field(ge=1, le=65_536)] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    response_format: ResponseFormat | None = None
    tools: Annotated[list[ToolDef], Field(max_length=128)] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    metadata_: dict[str, str] | None = Field(default=None, alias="metadata", max_length=16)
    safety_identifier: str | None = None

    def check_fields(self) -> None:
        """Refuse what cannot be served, naming the field (400)."""
        check_extra(self.model_extra, CHAT_REFUSED)
        self._check_stream_options()
        if self.top_logprobs and not self.logprobs:
            raise InvalidRequest("top_logprobs: needs logprobs set to true", param="top_logprobs")
        rf = self.response_format
        if rf is not None and rf.type == "json_schema" and rf.json_schema is None:
            raise InvalidRequest(
                "response_format: type json_schema needs its json_schema", param="response_format"
            )
        choice = self.tool_choice
        if choice not in (None, "none") and not self.tools:
            raise InvalidRequest("tool_choice: needs tools", param="tool_choice")
        named = choice.function.name if isinstance(choice, FunctionName) else None
        if named and named not in {t.function.name for t in self.tools or []}:
            raise InvalidRequest(
                f"tool_choice: no tool named {named!r} in tools", param="tool_choice"
            )
        if rf is not None and rf.json_schema is not None:
            check_schema(rf.json_schema.schema_, "response_format")
        for tool in self.tools or []:
            check_schema(tool.function.parameters or {}, "tools")
        if self.tool_parsing is not None and rf is not None and rf.type != "text":
            raise InvalidRequest(
                "response_format: cannot be combined with tool calls", param="response_format"
            )

    @property
    def tool_parsing(self) -> ToolParsing | None:
        """How the worker reads tool calls from the output (none without tools)."""
        choice = self.tool_choice or ("auto" if self.tools else "none")
        if not self.tools or choice == "none":
            return None
        parallel = self.parallel_tool_calls is not False
        if isinstance(choice, FunctionName):
            return ToolParsing(mode="named", function=choice.function.name, parallel=parallel)
        return ToolParsing(mode="required" if choice == "required" else "auto", parallel=parallel)

    @property
    def tool_dicts(self) -> list[dict[str, Any]] | None:
        """The tools as the chat template receives them (none when tool_choice is none)."""
        if self.tool_parsing is None:
            return None
        return [t.model_dump(exclude_none=True) for t in self.tools or []]

    def sampling(self, default_max_tokens: int) -> SamplingParams:
        """The engine's sampling parameters for this request."""
        more: dict[str, Any] = {}
        if self.logprobs:
            more["logprobs"] = self.top_logprobs or 0
        rf, parsing = self.response_format, self.tool_parsing
        if rf is not None and rf.type == "json_object":
            more["json_object"] = True
        elif rf is not None and rf.json_schema is not None:
            more["json_schema"] = rf.json_schema.schema_
        elif parsing is not None and parsing.mode != "auto":
            more["json_schema"] = tools_schema(self.tools or [], parsing)
        sampling = self._sampling(default_max_tokens, tool_parsing=parsing, **more)
        if self.max_completion_tokens:
            sampling.max_tokens = self.max_completion_tokens
        return sampling

    @property
    def buffered(self) -> bool:
        """Whether a stream carries the answer in one piece at its end (tool calls)."""
        return self.tool_parsing is not None

    @property
    def metadata(self) -> dict[str, str]:
        """The caller's ``metadata``, ``user`` and ``safety_identifier`` labels."""
        labels = dict(self.metadata_ or {})
        if self.user:
            labels["user"] = self.user
        if self.safety_identifier:
            labels["safety_identifier"] = self.safety_identifier
        return labels


class CompletionRequest(_Common):
    """Body of ``POST /v1/completions``."""

    prompt: Annotated[str, Field(min_length=1)]
    logprobs: Annotated[int, Field(ge=0, le=5)] | None = None

    def check_fields(self) -> None:
        """Refuse what cannot be served, naming the field (400)."""
        check_extra(self.model_extra, COMPLETION_REFUSED)
        self._check_stream_options()

    def sampling(self, default_max_tokens: int) -> SamplingParams:
        """The engine's sampling parameters for this request."""
        return self._sampling(default_max_tokens, logprobs=self.logprobs)

    @property
    def buffered(self) -> bool:
        """Whether a stream carries the answer in one piece at its end (never)."""
        return False
