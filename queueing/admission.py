"""Admission: turn a validated request into a costed job record, or say why not."""

from __future__ import annotations

import time
from typing import Any

from queueing import cost, keys
from queueing.catalogue import Catalogue, ModelSpec
from queueing.errors import ContextLengthExceeded, InvalidRequest
from queueing.keys import JobClass
from queueing.schemas import ChatMessage, JobRecord, JobStatus, SamplingParams
from queueing.tokens import ModelTokenizer


class Admission:
    """Counts prompt tokens with the model's tokenizer and prices the job in units."""

    def __init__(self, catalogue: Catalogue, default_model: str) -> None:
        self.catalogue = catalogue
        self.default_model = default_model
        self._tokenizers: dict[str, ModelTokenizer] = {}

    def tokenizer(self, spec: ModelSpec) -> ModelTokenizer:
        """The model's tokenizer, loaded once."""
        if spec.name not in self._tokenizers:
            self._tokenizers[spec.name] = ModelTokenizer(spec.path)
        return self._tokenizers[spec.name]

    def spec(self, model: str | None) -> ModelSpec:
        """The catalogue entry for ``model`` (the default when ``None``); raises if unknown."""
        return self.catalogue.get(model or self.default_model)

    def admit(
        self,
        *,
        tenant: str,
        partition: int,
        model: str | None,
        prompt: str | None,
        messages: list[ChatMessage] | None,
        params: SamplingParams,
        job_class: JobClass,
        metadata: dict[str, str] | None = None,
        recent_output_share: float | None = None,
        stream_tokens: bool = True,
        tools: list[dict[str, Any]] | None = None,
    ) -> JobRecord:
        """A queued job record for this request; raises on unknown model or context overflow.

        ``recent_output_share`` (see :func:`cost.expected_output_tokens`) tempers the cost;
        ``stream_tokens`` False asks the worker for the whole text at the end only; ``tools``
        (OpenAI function definitions) are rendered into a chat prompt; image parts become the
        template's placeholders in ``prompt``, their sources the record's ``images`` (in the
        same order), and each costs the model's ``image_tokens``. The job's id names
        ``partition`` (where :meth:`JobStore.place` put it).
        """
        spec = self.spec(model)
        tokenizer = self.tokenizer(spec)
        vocab = tokenizer.vocab_size()
        if unknown := [key for key in params.logit_bias if int(key) >= vocab]:
            raise InvalidRequest(
                f"logit_bias: token ids {', '.join(unknown)} are not in this model's "
                f"vocabulary of {vocab}",
                param="logit_bias",
            )
        images = [url for message in messages or [] for url in message.images]
        if images and not spec.takes_images:
            raise InvalidRequest(f"the model '{spec.name}' takes no images", param="messages")
        text = prompt if prompt is not None else tokenizer.render_chat(messages or [], tools)
        # Each image's placeholder in the text becomes the image's tokens in the engine.
        text_tokens = tokenizer.count(text)
        if images:
            text_tokens -= len(images) * tokenizer.image_placeholder_tokens
        image_tokens = len(images) * spec.image_tokens
        prompt_tokens = text_tokens + image_tokens
        if prompt_tokens + params.max_tokens > spec.context_length:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {spec.context_length} tokens. "
                f"However, you requested {prompt_tokens + params.max_tokens} tokens "
                f"({prompt_tokens} in the prompt{_of_images(image_tokens)}, "
                f"{params.max_tokens} for the completion).",
                param="messages" if messages is not None else "prompt",
            )
        estimate = cost.estimate(
            spec,
            prompt_tokens=text_tokens,
            max_tokens=params.max_tokens,
            image_tokens=image_tokens,
            recent_output_share=recent_output_share,
        )
        return JobRecord(
            id=keys.new_job_id(partition),
            model=spec.name,
            status=JobStatus.QUEUED,
            job_class=job_class,
            estimated_units=estimate.units,
            created_at=time.time(),
            tenant=tenant,
            band=estimate.band,
            prompt_tokens=prompt_tokens,
            prompt=text,
            params=params,
            stream_tokens=stream_tokens,
            metadata=metadata or {},
            images=images,
        )


def _of_images(image_tokens: int) -> str:
    return f", {image_tokens} of them for images" if image_tokens else ""
