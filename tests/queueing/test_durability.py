"""Acknowledged jobs survive a SIGKILL of the server (AOF + WAITAOF on the enqueue path)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from queueing import keys
from queueing.connection import connect
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.server import EmbeddedValkey
from queueing.settings import QueueSettings
from tests.conftest import free_port
from tests.queueing.records import record


async def test_acknowledged_jobs_survive_sigkill(tmp_path: Path) -> None:
    server = EmbeddedValkey(tmp_path, free_port(17400)).start()
    try:
        client = await connect(server.url)
        store = JobStore(client, QueueSettings())
        assert await store.check_durability(), "WAITAOF must guard the acknowledged path"
        jobs = [record(job_class=list(JobClass)[i % 3], band=i % 4) for i in range(1000)]
        acked = await asyncio.gather(*(store.enqueue(job) for job in jobs))
        assert sorted(acked) == sorted(job.id for job in jobs)
        await client.aclose()

        server.kill()
        server.start()

        client = await connect(server.url)
        for job in jobs:
            stored = await JobStore(client, QueueSettings()).get(job.id, "local")
            assert stored.status == "queued" and stored.prompt == job.prompt
        queues = {keys.queue("m", c, b) for c in JobClass for b in range(4)}
        entries = sum([await client.xlen(q) for q in queues])
        assert entries == 1000
        counters = await client.hgetall(keys.units("m"))
        assert round(float(counters["queued"]), 4) == round(sum(j.estimated_units for j in jobs), 4)
        await client.aclose()
    finally:
        server.stop()
