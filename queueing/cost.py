"""The cost model: a request's estimated engine work in model units, and its band."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from queueing.catalogue import ModelSpec


@dataclass(frozen=True)
class CostEstimate:
    """Estimated units and the cost band they fall in."""

    units: float
    band: int
    expected_output_tokens: int


# Headroom over the recent share, so an estimate errs towards too many tokens.
SHARE_HEADROOM = 1.25


def expected_output_tokens(max_tokens: int, recent_share: float | None) -> int:
    """``max_tokens``, tempered by the share of it this tenant and model used lately.

    ``recent_share`` is a moving average of ``completion_tokens / max_tokens`` over the
    tenant's finished jobs on the model; ``None`` (no history yet) means all of it.
    """
    if recent_share is None or recent_share <= 0:
        return max_tokens
    return max(1, min(max_tokens, math.ceil(max_tokens * recent_share * SHARE_HEADROOM)))


def estimate(
    spec: ModelSpec,
    *,
    prompt_tokens: int,
    max_tokens: int,
    image_tokens: int = 0,
    recent_output_share: float | None = None,
) -> CostEstimate:
    """Units for one request: weighted prompt tokens (those of its images too) and output."""
    output = expected_output_tokens(max_tokens, recent_output_share)
    units = (
        prompt_tokens + image_tokens
    ) * spec.prompt_weight / 1000 + output * spec.output_weight / 1000
    units = round(units, 4)
    return CostEstimate(
        units=units, band=bisect.bisect_left(spec.band_edges, units), expected_output_tokens=output
    )


def with_prepared_images(
    spec: ModelSpec, *, prompt_tokens: int, units: float, images: int, image_tokens: int
) -> tuple[int, CostEstimate]:
    """A job's prompt tokens and estimate once its ``images`` are prepared and known to become
    ``image_tokens`` prompt tokens in all (the preprocess tier's hand-off).

    The admission counted ``spec.image_tokens`` per image in ``prompt_tokens`` and ``units``;
    those are replaced by ``image_tokens``, and the output part of ``units`` is kept.
    """
    text = max(0, prompt_tokens - images * spec.image_tokens)
    output_units = max(0.0, units - prompt_tokens * spec.prompt_weight / 1000)
    expected = round(output_units * 1000 / spec.output_weight)
    return text + image_tokens, estimate(
        spec, prompt_tokens=text, max_tokens=expected, image_tokens=image_tokens
    )
