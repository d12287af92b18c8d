"""The preprocess worker (``inferq preprocess``): the shared claim loop with the image handler.

It serves every catalogue model that takes images, with a process pool sized to the CPUs the
container really has (each process single-threaded), and says at start which PIL it loaded.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import Executor

from preprocess.cpu import usable_cpus
from preprocess.pil_build import export, pil_build
from preprocess.pool import pool_size, process_pool
from queueing.catalogue import Catalogue
from queueing.connection import Client, connect, durable_writes
from queueing.files import Files
from queueing.filestore import open_storage
from queueing.images import PreparedImages
from queueing.prequeue import PreQueue
from queueing.processes import process_name
from queueing.settings import Settings
from workers.claimloop import ClaimLoop
from workers.image_sources import ImageSources
from workers.preprocess_handler import PreprocessHandler

log = logging.getLogger(__name__)


def image_models(catalogue: Catalogue) -> list[str]:
    """The catalogue's models that take images."""
    return [name for name in catalogue.names() if catalogue.get(name).takes_images]


class PreprocessWorker(ClaimLoop):
    """Claims jobs with images while it holds fewer than ``jobs_per_process`` per pool process
    (``slots``), prepares and hands them on."""

    queue: PreQueue

    def __init__(
        self,
        client: Client,
        images_client: Client,
        settings: Settings,
        catalogue: Catalogue,
        pool: Executor,
        slots: int,
        *,
        files: Files | None = None,
        consumer: str | None = None,
        burst: bool = False,
        grace_s: float = 30.0,
    ) -> None:
        consumer = consumer or process_name()
        queue = PreQueue(client, image_models(catalogue), consumer, settings.queue)
        self.images = PreparedImages(images_client, settings.queue.result_ttl_s)
        self.preprocess = PreprocessHandler(
            client,
            queue,
            self.images,
            ImageSources(settings.preprocess, files),
            catalogue,
            pool,
            slots * settings.preprocess.jobs_per_process,
            settings.preprocess,
            settings.worker,
        )
        super().__init__(
            client,
            queue,
            self.preprocess,
            lease_ms=settings.queue.lease_ms,
            renew_every_ms=settings.worker.renew_every_ms,
            block_ms=settings.worker.block_ms,
            consumer=consumer,
            burst=burst,
            grace_s=grace_s,
        )


async def run_preprocess(url: str, settings: Settings, *, consumer: str | None = None) -> None:
    """Connect, run a :class:`PreprocessWorker` until SIGTERM/SIGINT."""
    build = pil_build()
    log.info("%s", build.log_line())
    catalogue = Catalogue.load(settings.models_dir, settings.catalogue)
    slots = pool_size(usable_cpus(), settings.preprocess.processes)
    client = await connect(url, blocking=True)
    images_client = await connect(url, decode_responses=False, load_library=False)
    files = Files(client, open_storage(settings), settings.files)
    try:
        with process_pool(slots) as pool:
            worker = PreprocessWorker(
                client, images_client, settings, catalogue, pool, slots, files=files
            )
            export(build, worker.preprocess.metrics.registry)
            worker.preprocess.health["pil"] = build.log_line()
            if settings.redis.wait_aof:
                worker.queue.wait_aof = await durable_writes(client, settings.redis)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, worker.stop)
            log.info(
                "preprocess worker %s: %d processes, models %s",
                worker.consumer,
                slots,
                ", ".join(image_models(catalogue)) or "(none take images)",
            )
            try:
                await worker.run()
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
    finally:
        await images_client.aclose()
        await client.aclose()


def serve(settings: Settings, url: str) -> None:
    """Run the preprocess worker (call under ``if __name__ == "__main__":``: the pool spawns)."""
    asyncio.run(run_preprocess(url, settings))
