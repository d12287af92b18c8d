"""Chat messages as a model's chat template expects them, for templates that lack a feature.

A message with images becomes a list of parts: ``{"type": "image"}`` and ``{"type": "text"}``
(the form vision models' templates take, e.g. Idefics3's, which writes ``<image>``).

A template that knows the ``developer`` role, ``tools`` or ``tool_calls`` gets them as they
are; one that does not gets them in the forms ChatML models are trained on: developer turns
as system turns, the tools described in the system turn, calls as ``<tool_call>`` blocks and
results as ``<tool_response>`` blocks (the Hermes convention, which vLLM's ``hermes`` tool
parser reads back).
"""

from __future__ import annotations

import json
from typing import Any

from queueing.schemas import ChatMessage, TextPart

TOOLS_PROMPT = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""


def template_messages(
    messages: list[ChatMessage], template: str, tools: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """``messages`` as dicts for ``template``, with tools folded in where it cannot take them."""
    out = [_message(m, template) for m in messages]
    if tools and "tools" not in template:
        described = TOOLS_PROMPT.format(tools="\n".join(json.dumps(t) for t in tools))
        if out and out[0]["role"] == "system":
            out[0]["content"] = f"{out[0]['content']}\n\n{described}"
        else:
            out.insert(0, {"role": "system", "content": described})
    return out


def _message(message: ChatMessage, template: str) -> dict[str, Any]:
    role, content = message.role, message.text
    if role == "developer" and "developer" not in template:
        role = "system"
    if message.tool_calls and "tool_calls" not in template:
        calls = [
            json.dumps({"name": c.function.name, "arguments": json.loads(c.function.arguments)})
            for c in message.tool_calls
        ]
        content = "\n".join(
            [content] * bool(content) + [f"<tool_call>\n{c}\n</tool_call>" for c in calls]
        )
    if role == "tool" and "'tool'" not in template and '"tool"' not in template:
        role, content = "user", f"<tool_response>\n{content}\n</tool_response>"
    out: dict[str, Any] = {"role": role, "content": _parts(message) if message.images else content}
    if message.name is not None:
        out["name"] = message.name
    if message.tool_calls and "tool_calls" in template:
        out["tool_calls"] = [c.model_dump() for c in message.tool_calls]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _parts(message: ChatMessage) -> list[dict[str, Any]]:
    """A message with images as a vision template takes it: ``{"type": "image"}`` where each
    image goes (the template writes its placeholder there) and ``{"type": "text", ...}``."""
    assert isinstance(message.content, list)
    return [
        {"type": "text", "text": part.text} if isinstance(part, TextPart) else {"type": "image"}
        for part in message.content
    ]
