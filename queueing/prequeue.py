"""The preprocess worker's side of the queue: claim jobs with images, hand them on, or fail them.

A job with images waits in ``iq:pre:{T}:<model>:<class>`` (its partition's preprocess stream
of its class) with status ``queued`` and ``stage`` ``pre``. A preprocess worker claims it
(``iq_pre_pick`` + ``iq_pre_take``), prepares its images and hands it on to its model queue
in one step on the job's slot (``iq_handoff``), or fails it with the reason
(``iq_pre_fail``). Leases, renewal and takeover work as for the model queues.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from queueing import keys
from queueing.calls import Handoff, PreFail, PrePick, PreTake, Reclaim
from queueing.catalogue import ModelSpec
from queueing.connection import Client, WaitAof, fcall, fcall_many
from queueing.cost import CostEstimate
from queueing.errors import ServerError, translated
from queueing.keys import JobClass
from queueing.settings import QueueSettings
from queueing.usage import usage_keys
from queueing.workqueue import (
    ClaimedJob,
    checked,
    held_jobs,
    picked_triples,
    renew_leases,
    take_call,
)


class PreQueue:
    """The preprocess streams of ``models`` (every partition and class), for one consumer.

    A claim visits the (model, partition) lanes round robin from where the last one stopped,
    best class first within a lane, until it has ``max_count`` jobs.
    """

    def __init__(
        self, client: Client, models: Sequence[str], consumer: str, settings: QueueSettings
    ) -> None:
        self.client = client
        self.consumer = consumer
        self.settings = settings
        self.lanes = [(m, p) for m in models for p in range(settings.partitions_of(m))]
        self.streams = {
            lane: [keys.prequeue(lane[0], lane[1], c) for c in JobClass] for lane in self.lanes
        }
        self.partitions = max((settings.partitions_of(m) for m in models), default=0)
        self._next = 0
        # Set (see :func:`durable_writes`): a hand-off returns once it is fsynced.
        self.wait_aof: WaitAof | None = None

    def wake_channels(self) -> list[str]:
        """The sharded channels that announce jobs entering the preprocess streams."""
        return [keys.prewake_channel(p) for p in range(self.partitions)]

    def cancel_channels(self) -> list[str]:
        """None: a cancel takes a job waiting for preparation off at once (the hand-off of a
        job cancelled while held is a no-op)."""
        return []

    def woken(self, channel: str, data: str) -> None:
        """A claim visits every lane: nothing to note."""

    async def ensure_groups(self) -> None:
        """Create every preprocess stream and its consumer group (idempotent)."""
        with translated("cannot create the preprocess streams"):
            async with self.client.pipeline(transaction=False) as pipe:
                for streams in self.streams.values():
                    for stream in streams:
                        pipe.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                raise ServerError(f"cannot create the preprocess streams: {reply}")

    async def claim(self, max_count: int) -> list[ClaimedJob]:
        """Up to ``max_count`` jobs, each now held by this consumer."""
        claimed: list[ClaimedJob] = []
        for _ in range(len(self.lanes)):
            if len(claimed) >= max_count:
                break
            lane = self.lanes[self._next]
            self._next = (self._next + 1) % len(self.lanes)
            pick = PrePick(
                queues=self.streams[lane],
                consumer=self.consumer,
                max_count=max_count - len(claimed),
            )
            claimed += await self._take(lane, picked_triples(await fcall(self.client, pick)))
        return claimed

    async def reclaim(self, max_count: int) -> list[ClaimedJob]:
        """Take over jobs whose lease lapsed; too-often delivered ones fail (dead letters)."""
        if max_count <= 0:
            return []
        calls = [
            Reclaim(
                queues=self.streams[lane],
                consumer=self.consumer,
                min_idle_ms=self.settings.lease_ms,
                max_count=max_count,
            )
            for lane in self.lanes
        ]
        replies = await fcall_many(self.client, calls)
        claimed: list[ClaimedJob] = []
        for lane, reply in zip(self.lanes, replies, strict=True):
            claimed += await self._take(lane, picked_triples(checked(reply)))
        return claimed

    async def _take(
        self, lane: tuple[str, int], picked: list[tuple[int, str, str]]
    ) -> list[ClaimedJob]:
        if not picked:
            return []
        model, partition = lane
        call = take_call(
            PreTake, model, partition, self.streams[lane], picked, self.consumer, self.settings
        )
        return held_jobs(await fcall(self.client, call))

    async def renew(self, jobs: Sequence[ClaimedJob]) -> tuple[set[str], set[str]]:
        """Renew leases; the ids this worker lost and those asked to cancel."""
        return await renew_leases(self.client, self.consumer, jobs)

    async def handoff(
        self,
        job: ClaimedJob,
        spec: ModelSpec,
        refs: Sequence[str],
        digests: Sequence[str],
        prompt_tokens: int,
        estimate: CostEstimate,
    ) -> int:
        """Queue the job for its model with its prepared images (``refs``) and its estimate:
        1 done, 0 no longer held for preparation (cancelled: a no-op), -1 not ours."""
        record, partition = job.record, job.partition
        fields = {
            "images": json.dumps(list(refs), separators=(",", ":")),
            "estimated_units": repr(estimate.units),
            "band": str(estimate.band),
            "prompt_tokens": str(prompt_tokens),
        }
        call = Handoff(
            job=keys.job(job.id),
            events=keys.events(job.id),
            pre=job.stream,
            queue=keys.waiting(spec.name, partition, record.job_class, estimate.band),
            units=keys.units(spec.name, partition),
            wake=keys.wake_channel(spec.name, partition),
            fair=keys.fair(spec.name, partition),
            active=keys.active(spec.name, partition, record.job_class),
            order=keys.arrivals(spec.name, partition, record.job_class, estimate.band),
            images=[keys.prepared_image(partition, d) for d in dict.fromkeys(digests)],
            consumer=self.consumer,
            entry=job.entry,
            job_id=job.id,
            cost=estimate.units,
            qfield=keys.queue_field(record.job_class, estimate.band),
            ttl=self.settings.result_ttl_s,
            fields=[item for pair in fields.items() for item in pair],
        )
        [reply] = await fcall_many(self.client, [call], wait_aof=self.wait_aof)
        return int(checked(reply))

    async def fail(self, job: ClaimedJob, reason: str, code: str = "") -> int:
        """Fail the job with ``reason`` (and the error's ``code``, when the client's input is
        to blame): 1 done, 0 no longer held for preparation, -1 not ours."""
        now = time.time()
        usage, usage_total = usage_keys(job.partition, now, self.settings)
        call = PreFail(
            job=keys.job(job.id),
            events=keys.events(job.id),
            queue=job.stream,
            units=keys.units(job.record.model, job.partition),
            channel=keys.events_channel(job.partition),
            consumer=self.consumer,
            entry=job.entry,
            job_id=job.id,
            now=now,
            ttl=self.settings.result_ttl_s,
            reason=reason,
            code=code,
            usage=usage,
            usage_total=usage_total,
            usage_ttl=self.settings.usage_ttl_s,
        )
        [reply] = await fcall_many(self.client, [call], wait_aof=self.wait_aof)
        return int(checked(reply))
