"""One rule for every field of OpenAI's chat and completions requests: honoured or refused.

The honoured fields are the request models' own fields (:mod:`oaiproto.requests`); every
other field the openai SDK can send is listed here with why it is refused. A refused field is
accepted only at its neutral value (absent, ``null``, or the one value that asks for nothing);
anything else is a 400 that names it. A field in neither list is unknown and refused too.
A test compares both lists with the SDK's own request types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from queueing.errors import InvalidRequest


@dataclass(frozen=True)
class Refused:
    """Why a field is refused, and the values that ask for nothing and so pass."""

    why: str
    neutral: tuple[Any, ...] = (None,)


_UNSUPPORTED = "is not supported by inferq"

CHAT_REFUSED: dict[str, Refused] = {
    "audio": Refused(f"audio output {_UNSUPPORTED}"),
    "modalities": Refused(f"output modalities other than text {_UNSUPPORTED}", (None, ["text"])),
    "function_call": Refused("the deprecated function_call is not served: use tool_choice"),
    "functions": Refused("the deprecated functions are not served: use tools"),
    "moderation": Refused(f"moderation {_UNSUPPORTED}"),
    "prediction": Refused(f"predicted outputs {_UNSUPPORTED}"),
    "prompt_cache_key": Refused(f"prompt_cache_key {_UNSUPPORTED} (vLLM caches prefixes itself)"),
    "prompt_cache_options": Refused(f"prompt cache options {_UNSUPPORTED}"),
    "prompt_cache_retention": Refused(f"prompt cache retention {_UNSUPPORTED}"),
    "reasoning_effort": Refused(f"reasoning_effort {_UNSUPPORTED} (the model does not reason)"),
    "service_tier": Refused(
        f"service tiers {_UNSUPPORTED}: every request is interactive", (None, "auto", "default")
    ),
    "store": Refused(f"stored completions {_UNSUPPORTED}", (None, False)),
    "verbosity": Refused(f"verbosity {_UNSUPPORTED}"),
    "web_search_options": Refused(f"web search {_UNSUPPORTED}"),
}

COMPLETION_REFUSED: dict[str, Refused] = {
    "best_of": Refused(f"best_of above 1 {_UNSUPPORTED}", (None, 1)),
    "echo": Refused(f"echo {_UNSUPPORTED}", (None, False)),
    "suffix": Refused(f"suffix (insertion) {_UNSUPPORTED}"),
}

# Honoured fields that the SDK's request types do not list: ``stream`` (the SDK splits it
# into its streaming and non-streaming variants) and vLLM's extensions.
EXTENSIONS = frozenset({"stream", "ignore_eos", "repetition_penalty"})


def check_extra(extra: Mapping[str, Any] | None, refused: Mapping[str, Refused]) -> None:
    """Raise :class:`InvalidRequest` naming the first field that is refused or unknown."""
    for name, value in (extra or {}).items():
        rule = refused.get(name)
        if rule is None:
            raise InvalidRequest(f"{name}: unknown parameter", param=name)
        if not any(value == neutral for neutral in rule.neutral):
            raise InvalidRequest(f"{name}: {rule.why}", param=name)
