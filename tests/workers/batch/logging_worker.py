"""A worker process for batch crash tests: the real Worker over the real model's queues, with
the scripted engine, logging each engine start and each durably recorded completion.

``python -m tests.workers.batch.logging_worker LOG``, configured by ``INFERQ_*`` variables.
Each line of LOG is ``start <job id>`` or ``done <job id>``, written when it happens.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator
from typing import IO, Any

from queueing.catalogue import Catalogue
from queueing.connection import connect, durable_writes
from queueing.settings import Settings
from workers.engine import EngineDelta, EngineRequest
from workers.engines.scripted import ScriptedEngine
from workers.loop import Worker


class LoggingEngine(ScriptedEngine):
    """The scripted engine, noting each request it starts."""

    def __init__(self, log: IO[str], **options: Any) -> None:
        super().__init__(**options)
        self.log = log

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineDelta]:
        """Note the start, then run the script."""
        self.log.write(f"start {request.request_id}\n")
        async for delta in super().generate(request):
            yield delta


async def main(log: IO[str]) -> None:
    """Serve the default model until SIGTERM, logging starts and completions."""
    settings = Settings()
    assert settings.redis.url
    spec = Catalogue.load(settings.models_dir, settings.catalogue).get(settings.default_model)
    client = await connect(settings.redis.url, blocking=True)
    engine = LoggingEngine(log, token_delay_s=0.05)
    worker = Worker(
        client,
        spec,
        engine,
        queue_settings=settings.queue,
        worker_settings=settings.worker,
        unit_budget=100.0,
    )
    worker.queue.wait_aof = await durable_writes(client, settings.redis)
    complete = worker.queue.complete

    async def logged(job: Any, status: Any, **fields: Any) -> int:
        code = await complete(job, status, **fields)
        if code == 1:  # recorded (and fsynced) by this call
            log.write(f"done {job.id}\n")
        return code

    worker.queue.complete = logged  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.stop)
    try:
        await worker.run()
    finally:
        await client.aclose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    with open(sys.argv[1], "a", buffering=1) as log_file:
        asyncio.run(main(log_file))
