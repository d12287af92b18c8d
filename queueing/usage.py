"""Usage per tenant and model: written by the Lua functions where jobs finish, read here.

Each partition keeps one hash per time bucket (``keys.usage``, expiring after
``usage_ttl_s``) and one of all-time totals (``keys.usage_total``, what the metrics count);
fields are ``tenant|model|metric``, metric one of units, prompt_tokens, completion_tokens,
succeeded, failed, cancelled. Readers sum the partitions (and the buckets since a time).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from pydantic import BaseModel, Field

from queueing import keys
from queueing.connection import Client
from queueing.errors import translated
from queueing.settings import QueueSettings

OUTCOMES = ("succeeded", "failed", "cancelled")
_TOKENS = ("prompt_tokens", "completion_tokens")


class UsageRow(BaseModel):
    """One tenant's use of one model."""

    tenant: str
    model: str
    units: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: dict[str, int] = Field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))


def bucket_start(now: float, settings: QueueSettings) -> int:
    """The start (epoch seconds) of the bucket ``now`` falls in."""
    return int(now // settings.usage_bucket_s) * settings.usage_bucket_s


def usage_keys(partition: int, now: float, settings: QueueSettings) -> tuple[str, str]:
    """The usage bucket a job finishing at ``now`` in ``partition`` counts in, and the totals."""
    return keys.usage(partition, bucket_start(now, settings)), keys.usage_total(partition)


def summed(hashes: Iterable[dict[str, str]], tenant: str | None = None) -> list[UsageRow]:
    """Rows per tenant and model, summed over ``hashes`` (only ``tenant``'s, if given)."""
    rows: dict[tuple[str, str], UsageRow] = {}
    for raw in hashes:
        for field, value in raw.items():
            who, model, metric = field.rsplit("|", 2)
            if tenant is not None and who != tenant:
                continue
            row = rows.setdefault((who, model), UsageRow(tenant=who, model=model))
            amount = float(value)
            if metric == "units":
                row.units = round(row.units + amount, 6)
            elif metric in _TOKENS:
                setattr(row, metric, getattr(row, metric) + int(amount))
            elif metric in OUTCOMES:
                row.requests[metric] += int(amount)
    return [rows[k] for k in sorted(rows)]


async def read_usage(
    client: Client,
    settings: QueueSettings,
    *,
    since: float,
    until: float | None = None,
    tenant: str | None = None,
) -> list[UsageRow]:
    """Usage in the buckets from the one holding ``since`` to the one holding ``until``."""
    until = time.time() if until is None else until
    since = max(since, until - settings.usage_ttl_s)
    step = settings.usage_bucket_s
    starts = range(bucket_start(since, settings), bucket_start(until, settings) + 1, step)
    names = [keys.usage(p, s) for p in range(settings.max_partitions) for s in starts]
    return summed(await _hashes(client, names), tenant)


async def read_totals(client: Client, settings: QueueSettings) -> list[UsageRow]:
    """All-time usage of every tenant and model (the metrics' counters)."""
    names = [keys.usage_total(p) for p in range(settings.max_partitions)]
    return summed(await _hashes(client, names))


async def _hashes(client: Client, names: list[str]) -> list[dict[str, str]]:
    with translated("cannot read the usage"):
        async with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(name)
            replies: list[dict[str, str]] = await pipe.execute()
    return replies
