"""Messages for a chat template that lacks the developer role, tools or tool calls."""

from __future__ import annotations

import json

from openai.types.chat import ChatCompletionMessage

from queueing.catalogue import ModelSpec
from queueing.chat import template_messages
from queueing.schemas import ChatMessage
from queueing.tokens import ModelTokenizer

CHATML = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
CALL = {"id": "call_1", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def messages(*raw: dict[str, object]) -> list[ChatMessage]:
    return [ChatMessage.model_validate(m) for m in raw]


def test_developer_becomes_system_and_parts_are_joined() -> None:
    out = template_messages(
        messages(
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                "name": "ada",
            },
        ),
        CHATML,
        None,
    )
    assert out == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "ab", "name": "ada"},
    ]
    kept = template_messages(messages({"role": "developer", "content": "x"}), "developer", None)
    assert kept[0]["role"] == "developer"


def test_tools_calls_and_results_in_the_hermes_form() -> None:
    out = template_messages(
        messages(
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ),
        CHATML,
        [TOOL],
    )
    assert out[0]["role"] == "system" and json.dumps(TOOL) in out[0]["content"]
    call = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    assert out[2] == {"role": "assistant", "content": f"<tool_call>\n{call}\n</tool_call>"}
    assert out[3]["role"] == "user"
    assert out[3]["content"] == "<tool_response>\nsunny\n</tool_response>"


def test_the_model_template_renders_a_tool_turn(spec: ModelSpec) -> None:
    prompt = ModelTokenizer(spec.path).render_chat(
        messages(
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ),
        [TOOL],
    )
    assert "<tools>" in prompt and "<tool_call>" in prompt and "<tool_response>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_a_reply_message_sent_back_whole_is_history() -> None:
    reply = ChatCompletionMessage.model_validate(
        {"role": "assistant", "tool_calls": [CALL | {"type": "function"}]}
    )
    [message] = messages(reply.model_dump())
    assert message.tool_calls is not None and message.tool_calls[0].id == "call_1"
