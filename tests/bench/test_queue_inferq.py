"""The queue bench's jobs go where the store's placement puts them."""

from __future__ import annotations

from collections import Counter

from bench.queue_inferq import jobs
from queueing.connection import connect
from queueing.jobstore import JobStore
from queueing.keys import partition_of
from queueing.server import EmbeddedValkey
from queueing.settings import QueueSettings


async def test_jobs_are_spread_round_robin_over_the_partitions(valkey: EmbeddedValkey) -> None:
    client = await connect(valkey.url)
    try:
        store = JobStore(client, QueueSettings(partitions=12))
        placed = Counter(partition_of(record.id) for record in jobs(store, 36))
    finally:
        await client.aclose()
    assert placed == dict.fromkeys(range(12), 3)
