"""Batch records in Redis: the atomic steps that move a batch on (what a batch is:
:mod:`queueing.batch_record`)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from queueing import keys
from queueing.batch_record import Batch, BatchStatus, Outcome, OutcomeKind
from queueing.calls import BatchMove, BatchRecord, Lease
from queueing.connection import Client, fcall, fcall_many
from queueing.errors import BatchNotFound, translated

_RECORD_CHUNK = 300  # lines per iq_batch_record call
_READ_CHUNK = 1_000  # list entries per LRANGE


def as_fields(fields: dict[str, Any]) -> dict[str, str]:
    """Hash fields as text (JSON for nested values)."""
    return {
        name: json.dumps(value) if isinstance(value, dict | list) else str(value)
        for name, value in fields.items()
    }


class Batches:
    """Batch records in Redis: every step that changes one is atomic on the batch's slot."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def create(self, batch: Batch) -> None:
        """Store a new batch, index it under its tenant and mark it active."""
        with translated("cannot store the batch"):
            await self.client.hset(keys.batch(batch.id), mapping=batch.to_hash())
            await self.client.zadd(keys.tenant_batches(batch.tenant), {batch.id: batch.created_at})
            await self.client.sadd(keys.ACTIVE_BATCHES, batch.id)

    async def get(self, batch_id: str, tenant: str | None = None) -> Batch:
        """The batch (only if it belongs to ``tenant``, when given)."""
        if not keys.is_batch_id(batch_id):
            raise BatchNotFound(f"No batch found with id '{batch_id}'.", param="batch_id")
        with translated("cannot read the batch"):
            raw = await self.client.hgetall(keys.batch(batch_id))
        if not raw or (tenant is not None and raw.get("tenant") != tenant):
            raise BatchNotFound(f"No batch found with id '{batch_id}'.", param="batch_id")
        return Batch.from_hash(raw)

    async def page(self, tenant: str, after: str | None, limit: int) -> tuple[list[Batch], bool]:
        """The tenant's batches, newest first, after the batch ``after``; and whether more."""
        index = keys.tenant_batches(tenant)
        with translated("cannot list batches"):
            start = 0
            if after is not None:
                rank = await self.client.zrevrank(index, after)
                if rank is None:
                    return [], False
                start = rank + 1
            ids: list[str] = await self.client.zrevrange(index, start, start + limit)
            found = [await self._maybe(batch_id) for batch_id in ids[:limit]]
        return [b for b in found if b is not None], len(ids) > limit

    async def _maybe(self, batch_id: str) -> Batch | None:
        raw = await self.client.hgetall(keys.batch(batch_id))
        return Batch.from_hash(raw) if raw else None

    async def move(
        self, batch_id: str, allowed: Iterable[BatchStatus], to: BatchStatus, **fields: Any
    ) -> tuple[bool, str]:
        """Set status ``to`` (and ``fields``) if the status is one of ``allowed``.

        Returns whether it moved, and the status the batch has now.
        """
        call = BatchMove(
            batch=keys.batch(batch_id),
            from_=",".join(s.value for s in allowed),
            to=to.value,
            fields=[item for pair in as_fields(fields).items() for item in pair],
        )
        moved, status = await fcall(self.client, call)
        return bool(int(moved)), str(status)

    async def update(self, batch_id: str, **fields: Any) -> None:
        """Set progress fields (not the status: :meth:`move` does that)."""
        with translated("cannot update the batch"):
            await self.client.hset(keys.batch(batch_id), mapping=as_fields(fields))

    async def record(self, batch_id: str, outcomes: Sequence[Outcome]) -> tuple[int, int]:
        """Record finished lines; each line counts once, ever.

        Returns how many outputs and errors were new.
        """
        calls = [
            BatchRecord(
                batch=keys.batch(batch_id),
                written=keys.batch_written(batch_id),
                outputs=keys.batch_outputs(batch_id),
                errors=keys.batch_errors(batch_id),
                lines=[
                    str(value)
                    for o in outcomes[i : i + _RECORD_CHUNK]
                    for value in (o.line, o.kind, o.text, o.input_tokens, o.output_tokens)
                ],
            )
            for i in range(0, len(outcomes), _RECORD_CHUNK)
        ]
        replies = await fcall_many(self.client, calls)
        added = [0, 0]
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
            added[0] += int(reply[0])
            added[1] += int(reply[1])
        return added[0], added[1]

    async def written(self, batch_id: str, start: int, end: int) -> set[int]:
        """Lines in ``[start, end)`` whose outcome is recorded."""
        if end <= start:
            return set()
        first, last = start // 32, (end - 1) // 32
        gets = [part for word in range(first, last + 1) for part in ("GET", "u32", f"#{word}")]
        with translated("cannot read the batch's progress"):
            words: list[int] = await self.client.execute_command(
                "BITFIELD_RO", keys.batch_written(batch_id), *gets
            )
        done: set[int] = set()
        for index, word in enumerate(words):
            base = (first + index) * 32
            done.update(base + bit for bit in range(32) if word & (1 << (31 - bit)))
        return {line for line in done if start <= line < end}

    async def lines(self, batch_id: str, kind: OutcomeKind) -> AsyncIterator[str]:
        """The recorded output or error lines, in the order they were recorded."""
        key = keys.batch_outputs(batch_id) if kind == "out" else keys.batch_errors(batch_id)
        start = 0
        while True:
            with translated("cannot read the batch's results"):
                chunk: list[str] = await self.client.lrange(key, start, start + _READ_CHUNK - 1)
            for line in chunk:
                yield line
            if len(chunk) < _READ_CHUNK:
                return
            start += len(chunk)

    async def lease(self, batch_id: str, token: str, ttl_ms: int) -> bool:
        """Take or renew the right to advance the batch (``ttl_ms`` 0: give it up)."""
        call = Lease(lease=keys.batch_lease(batch_id), token=token, ttl_ms=ttl_ms)
        return bool(await fcall(self.client, call))

    async def launch(self, batch_id: str, ttl_ms: int) -> str | None:
        """A token to start an advance job under, unless one was started in the last
        ``ttl_ms`` and has not begun yet (None then)."""
        token = secrets.token_hex(8)
        with translated("cannot launch the batch"):
            key = keys.batch_launch(batch_id)
            return token if await self.client.set(key, token, nx=True, px=ttl_ms) else None

    async def launched(self, batch_id: str) -> None:
        """The advance job has begun: the next one may be launched when it ends."""
        with translated("cannot update the batch's launch"):
            await self.client.delete(keys.batch_launch(batch_id))

    async def leased(self, batch_id: str) -> bool:
        """True while someone holds the batch's lease."""
        with translated("cannot read the batch's lease"):
            return bool(await self.client.exists(keys.batch_lease(batch_id)))

    async def active(self) -> list[str]:
        """Ids of the batches not yet ended."""
        with translated("cannot list active batches"):
            return sorted(await self.client.smembers(keys.ACTIVE_BATCHES))

    async def retire(self, batch_id: str, ttl_s: int) -> None:
        """An ended batch: no longer active; its working keys expire after ``ttl_s``."""
        with translated("cannot retire the batch"):
            await self.client.srem(keys.ACTIVE_BATCHES, batch_id)
            for key in (
                keys.batch_written(batch_id),
                keys.batch_outputs(batch_id),
                keys.batch_errors(batch_id),
                keys.batch_custom_ids(batch_id),
            ):
                await self.client.expire(key, ttl_s)
            await self.client.delete(keys.batch_lease(batch_id))

    async def forget_custom_ids(self, batch_id: str) -> None:
        """Start the duplicate check afresh (validation is starting, or starting again)."""
        with translated("cannot reset custom ids"):
            await self.client.delete(keys.batch_custom_ids(batch_id))

    async def claim_custom_ids(self, batch_id: str, ids: Sequence[str]) -> list[bool]:
        """Add ``custom_id`` values; False for each one seen before (in this call too)."""
        key = keys.batch_custom_ids(batch_id)
        with translated("cannot check custom ids"):
            async with self.client.pipeline(transaction=False) as pipe:
                for custom_id in ids:
                    pipe.sadd(key, custom_id)
                replies: list[int] = await pipe.execute()
        return [bool(r) for r in replies]
