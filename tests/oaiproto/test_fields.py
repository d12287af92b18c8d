"""Every field the openai SDK can send is either honoured (a request model's field) or refused
(listed in :mod:`oaiproto.fields`): a field new to the SDK fails here until it is handled."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types import completion_create_params as text_params
from openai.types.chat import completion_create_params as chat_params
from pydantic import BaseModel

from oaiproto.fields import CHAT_REFUSED, COMPLETION_REFUSED, EXTENSIONS
from oaiproto.requests import ChatCompletionRequest, CompletionRequest
from queueing.errors import InvalidRequest

CHAT_SDK = set(chat_params.CompletionCreateParamsBase.__annotations__) | set(
    chat_params.CompletionCreateParamsStreaming.__annotations__
)
TEXT_SDK = set(text_params.CompletionCreateParamsBase.__annotations__) | set(
    text_params.CompletionCreateParamsStreaming.__annotations__
)


def honoured(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


@pytest.mark.parametrize(
    ("model", "refused", "sdk"),
    [
        (ChatCompletionRequest, CHAT_REFUSED, CHAT_SDK),
        (CompletionRequest, COMPLETION_REFUSED, TEXT_SDK),
    ],
    ids=["chat", "completions"],
)
def test_every_sdk_field_has_one_rule(
    model: type[BaseModel], refused: dict[str, Any], sdk: set[str]
) -> None:
    assert not honoured(model) & set(refused), "a field is both honoured and refused"
    assert sdk - honoured(model) - set(refused) == set(), "SDK fields without a rule"
    assert honoured(model) | set(refused) - sdk <= EXTENSIONS | sdk


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("field", "neutral"),
    [
        ("store", False),
        ("modalities", ["text"]),
        ("service_tier", "auto"),
        ("audio", None),
    ],
)
def test_a_refused_field_at_its_neutral_value_passes(field: str, neutral: Any) -> None:
    ChatCompletionRequest.model_validate({**CHAT, field: neutral}).check_fields()


def test_an_unknown_field_is_named() -> None:
    body = ChatCompletionRequest.model_validate({**CHAT, "top_q": 3})
    with pytest.raises(InvalidRequest, match="top_q: unknown parameter") as caught:
        body.check_fields()
    assert caught.value.param == "top_q"
