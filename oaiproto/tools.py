"""Tools: their definitions, the JSON schema that constrains a required or named call, and
the calls read back from that constrained output.

The schema follows vLLM's own server (``vllm.tool_parsers.utils.get_json_schema_from_tools``):
a named function's output is its arguments object; ``required`` outputs a list of
``{"name", "parameters"}`` objects, one of the tools each.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from jsonschema import SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field

from queueing.errors import InvalidRequest
from queueing.schemas import FunctionCall, ToolCall, ToolParsing

_EMPTY_OBJECT: dict[str, Any] = {"type": "object", "properties": {}}


class FunctionDef(BaseModel):
    """A function the model may call."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(BaseModel):
    """One entry of ``tools``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"]
    function: FunctionDef


class _Name(BaseModel):
    name: str


class FunctionName(BaseModel):
    """``tool_choice`` naming one function."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"]
    function: _Name


ToolChoice = Literal["none", "auto", "required"] | FunctionName


def check_schema(schema: dict[str, Any], param: str) -> None:
    """Refuse (400, naming ``param``) a JSON schema that is not one, before the engine sees it."""
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise InvalidRequest(
            f"{param}: not a valid JSON schema: {exc.message}", param=param
        ) from None


def _parameters(tool: ToolDef) -> dict[str, Any]:
    return tool.function.parameters or _EMPTY_OBJECT


def tools_schema(tools: list[ToolDef], parsing: ToolParsing) -> dict[str, Any]:
    """The JSON schema the output must follow for a ``required`` or ``named`` tool choice."""
    if parsing.mode == "named":
        return next(_parameters(t) for t in tools if t.function.name == parsing.function)
    one_of = [
        {
            "properties": {
                "name": {"type": "string", "enum": [t.function.name]},
                "parameters": _parameters(t),
            },
            "required": ["name", "parameters"],
        }
        for t in tools
    ]
    schema: dict[str, Any] = {
        "type": "array",
        "minItems": 1,
        "items": {"type": "object", "anyOf": one_of},
    }
    if not parsing.parallel:
        schema["maxItems"] = 1
    return schema


def call_id() -> str:
    """A fresh tool call id, in OpenAI's form."""
    return f"call_{uuid.uuid4().hex[:24]}"


def constrained_calls(text: str, parsing: ToolParsing) -> list[ToolCall]:
    """The calls in the output of a ``required`` or ``named`` choice (``[]`` if cut short)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return []  # cut off by max_tokens: the finish reason says "length"
    if parsing.mode == "named":
        pairs = [(parsing.function or "", value)]
    else:
        pairs = [(item["name"], item["parameters"]) for item in value]
    return [
        ToolCall(
            id=call_id(),
            function=FunctionCall(name=name, arguments=json.dumps(args, ensure_ascii=False)),
        )
        for name, args in pairs
    ]
