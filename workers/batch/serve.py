"""Build the batch runner over the queue and file store, and run its arq worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from queueing.admission import Admission
from queueing.batches import Batches
from queueing.catalogue import Catalogue
from queueing.connection import connect
from queueing.files import Files
from queueing.filestore import open_storage
from queueing.jobstore import JobStore
from queueing.settings import Settings
from workers.batch.arq_app import batch_worker
from workers.batch.collect import Collector
from workers.batch.expand import Expander
from workers.batch.finalize import Finalizer
from workers.batch.runner import BatchRunner
from workers.batch.validate import Validator

CONNECTIONS = 32
log = logging.getLogger(__name__)


class ClusterNeedsArqUrl(ValueError):
    """arq speaks no Redis Cluster: a clustered queue needs ``INFERQ_BATCH__ARQ_URL``."""


def arq_url(settings: Settings, queue_url: str) -> str:
    """Where arq keeps its job queue: its own setting, else the queue's single server."""
    if settings.batch.arq_url:
        return settings.batch.arq_url
    if queue_url.startswith("redis+cluster://"):
        raise ClusterNeedsArqUrl(
            "the queue is a Redis Cluster and arq speaks no cluster: set INFERQ_BATCH__ARQ_URL "
            "to a single Redis/Valkey server for arq's own jobs"
        )
    return queue_url


@asynccontextmanager
async def batch_runner(
    settings: Settings, queue_url: str
) -> AsyncIterator[tuple[BatchRunner, Batches]]:
    """A runner (and the batch records) over the queue at ``queue_url``; closed on exit."""
    client = await connect(queue_url, max_connections=CONNECTIONS, blocking=True)
    try:
        store = JobStore(client, settings.queue, settings.redis)
        if settings.redis.wait_aof:
            await store.check_durability()
        catalogue = Catalogue.load(settings.models_dir, settings.catalogue)
        admission = Admission(catalogue, settings.default_model)
        files = Files(client, open_storage(settings), settings.files)
        batches = Batches(client)
        bs = settings.batch
        runner = BatchRunner(
            batches,
            admission,
            Validator(files, batches, bs),
            Expander(admission, store, batches, files, bs),
            Collector(client, batches, settings.queue),
            Finalizer(files, batches, bs, settings.queue),
            bs,
            settings.queue,
        )
        yield runner, batches
    finally:
        await client.aclose()


async def run(settings: Settings, queue_url: str) -> None:
    """Run the batch worker until SIGTERM/SIGINT."""
    url = arq_url(settings, queue_url)
    async with batch_runner(settings, queue_url) as (runner, batches):
        worker = batch_worker(url, runner, batches)
        try:
            await worker.async_run()
        except asyncio.CancelledError:
            log.info("batch worker stopped")  # SIGTERM/SIGINT: arq cancels its main task
        finally:
            await worker.close()


def serve(settings: Settings, queue_url: str) -> None:
    """Run the batch worker (blocking)."""
    asyncio.run(run(settings, queue_url))
