"""Tool schemas for forced calls, and the calls read back from constrained output."""

from __future__ import annotations

import json

from oaiproto.tools import FunctionDef, ToolDef, constrained_calls, tools_schema
from queueing.schemas import ToolParsing

ADD = ToolDef(
    type="function",
    function=FunctionDef(
        name="add",
        parameters={"type": "object", "properties": {"a": {"type": "integer"}}},
    ),
)
PING = ToolDef(type="function", function=FunctionDef(name="ping"))


def test_a_named_function_is_constrained_to_its_arguments() -> None:
    parsing = ToolParsing(mode="named", function="add")
    assert tools_schema([PING, ADD], parsing) == ADD.function.parameters
    [call] = constrained_calls('{"a": 2}', parsing)
    assert call.function.name == "add" and json.loads(call.function.arguments) == {"a": 2}
    assert call.id.startswith("call_")


def test_required_is_a_list_of_calls_to_the_tools() -> None:
    parsing = ToolParsing(mode="required", parallel=False)
    schema = tools_schema([ADD, PING], parsing)
    assert schema["minItems"] == 1 and schema["maxItems"] == 1
    names = [option["properties"]["name"]["enum"] for option in schema["items"]["anyOf"]]
    assert names == [["add"], ["ping"]]
    calls = constrained_calls(
        '[{"name": "ping", "parameters": {}}, {"name": "add", "parameters": {"a": 1}}]',
        ToolParsing(mode="required"),
    )
    assert [c.function.name for c in calls] == ["ping", "add"]


def test_output_cut_short_has_no_calls() -> None:
    assert constrained_calls('{"a": ', ToolParsing(mode="named", function="add")) == []
