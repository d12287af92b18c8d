"""Token counting with the model's own tokenizer and chat template (no torch)."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from queueing.chat import template_messages
from queueing.errors import InvalidRequest
from queueing.schemas import ChatMessage


class ModelTokenizer:
    """Counts tokens and renders chat prompts exactly as the model folder says."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        config_path = model_dir / "tokenizer_config.json"
        self._config: dict[str, Any] = (
            json.loads(config_path.read_text()) if config_path.exists() else {}
        )

    @cached_property
    def _tokenizer(self) -> Tokenizer:
        path = self.model_dir / "tokenizer.json"
        if not path.exists():
            raise InvalidRequest(
                f"model folder {self.model_dir} has no tokenizer.json; run `inferq model prepare`"
            )
        return Tokenizer.from_file(str(path))

    def vocab_size(self) -> int:
        """How many token ids the model has (added tokens included)."""
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))

    def count(self, text: str) -> int:
        """Tokens in ``text`` as the engine will see them (no special tokens added)."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def render_chat(
        self, messages: list[ChatMessage], tools: list[dict[str, Any]] | None = None
    ) -> str:
        """The prompt the model's chat template makes of ``messages`` (and ``tools``)."""
        template = self._template()
        return self._render(template, template_messages(messages, template, tools), tools)

    @cached_property
    def image_placeholder_tokens(self) -> int:
        """Tokens the placeholder the chat template writes for one image takes (the engine
        replaces it with the image's own tokens)."""
        template = self._template()
        image = self._render(template, [{"role": "user", "content": [{"type": "image"}]}], None)
        empty = self._render(template, [{"role": "user", "content": []}], None)
        return self.count(image) - self.count(empty)

    def _template(self) -> str:
        template = self._config.get("chat_template")
        jinja_file = self.model_dir / "chat_template.jinja"
        if not isinstance(template, str) and jinja_file.exists():
            template = jinja_file.read_text()
        if not isinstance(template, str):
            raise InvalidRequest(f"model at {self.model_dir} has no chat template")
        return template

    def _render(
        self, template: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> str:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        return env.from_string(template).render(
            messages=messages,
            tools=tools or None,
            add_generation_prompt=True,
            bos_token=_token_text(self._config.get("bos_token")),
            eos_token=_token_text(self._config.get("eos_token")),
        )


def _token_text(token: Any) -> str:
    if isinstance(token, dict):
        return str(token.get("content", ""))
    return "" if token is None else str(token)
