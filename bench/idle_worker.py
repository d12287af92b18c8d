"""The idle bench's LLM worker: the real :class:`workers.loop.Worker` (claim loop, LlmHandler,
JobRunner) on the scripted engine at a fixed pace per token, timing each job's image step and
engine run into a file (one JSON line per job).

``tier``: the job's images were prepared by the preprocess tier; the worker reads them from the
queue server, as ``inferq worker`` does. ``inline``: a deployment without the tier; the worker
reads each raw image (data: URL) and runs ``preprocess.prepare`` on it itself, in a thread of
its own process (``asyncio.to_thread``), before the engine can start the job.

Run as ``python -m bench.idle_worker URL MODEL MODE TIMELINE --slots N --token-ms MS``; it
works until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TextIO

from preprocess.prepare import prepare
from queueing.catalogue import Catalogue
from queueing.connection import connect
from queueing.images import PreparedImages
from queueing.schemas import JobRecord
from queueing.settings import PreprocessSettings, Settings
from workers.engine import EngineDelta, EngineRequest
from workers.engines.scripted import ScriptedEngine
from workers.image_sources import ImageSources
from workers.jobrun import JobRunner
from workers.loop import Worker
from workers.steps import StepClock


class Timeline:
    """Each job's image step and engine run, written as one JSON line when the run ends."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.images: dict[str, tuple[float, float]] = {}

    def engine_run(self, job_id: str, started: float, ended: float) -> None:
        images = self.images.pop(job_id, (started, started))
        line = {"id": job_id, "images": images, "engine": (started, ended)}
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()


class TimedEngine:
    """The scripted engine, with each request's run noted in the timeline."""

    def __init__(self, engine: ScriptedEngine, timeline: Timeline) -> None:
        self.engine = engine
        self.timeline = timeline

    @property
    def slots(self) -> int:
        return self.engine.slots

    @property
    def steps(self) -> StepClock:
        return self.engine.steps

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineDelta]:
        started = time.time()
        try:
            async for delta in self.engine.generate(request):
                yield delta
        finally:
            self.timeline.engine_run(request.request_id, started, time.time())

    async def abort(self, request_id: str) -> None:
        await self.engine.abort(request_id)

    def prefill_tokens(self) -> int:
        return self.engine.prefill_tokens()

    def alive(self) -> bool:
        return self.engine.alive()


class TimedRunner(JobRunner):
    """The worker's job runner, its image step timed; with ``inline`` it prepares raw images
    itself instead of reading prepared ones."""

    def __init__(
        self, base: JobRunner, timeline: Timeline, inline: PreprocessSettings | None
    ) -> None:
        super().__init__(
            base.queue,
            base.engine,
            base.settings,
            base.progress,
            base.on_outcome,
            base.on_engine_done,
            base.images,
        )
        self.timeline = timeline
        self.inline = inline
        self.sources = ImageSources(inline or PreprocessSettings(), None)

    async def _images(self, record: JobRecord) -> tuple[bytes, ...]:
        started = time.time()
        try:
            if self.inline is None:
                return await super()._images(record)
            raws = [await self.sources.read(source, record.tenant) for source in record.images]
            prepared = [await asyncio.to_thread(prepare, raw, self.inline) for raw in raws]
            return tuple(image.data for image in prepared)
        finally:
            self.timeline.images[record.id] = (started, time.time())


async def work(args: argparse.Namespace) -> None:
    """Run the worker until SIGTERM."""
    settings = Settings()  # INFERQ_CATALOGUE: the bench's catalogue, which lists the model
    spec = Catalogue.load(settings.models_dir, settings.catalogue).get(args.model)
    worker_settings = settings.worker.model_copy(update={"unit_budget": 1e6})
    client = await connect(args.url, blocking=True)
    images = await connect(args.url, decode_responses=False, load_library=False)
    engine = ScriptedEngine(token_delay_s=args.token_ms / 1000, slots=args.slots + 1)
    with args.timeline.open("a") as out:
        timeline = Timeline(out)
        worker = Worker(
            client,
            spec,
            TimedEngine(engine, timeline),
            queue_settings=settings.queue,
            worker_settings=worker_settings,
            consumer=f"idle-{args.mode}",
            claim_batch=args.slots,
            images=PreparedImages(images, settings.queue.result_ttl_s),
            grace_s=2.0,
        )
        assert worker.llm.runner is not None
        inline = settings.preprocess if args.mode == "inline" else None
        worker.llm.runner = TimedRunner(worker.llm.runner, timeline, inline)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, worker.stop)
        try:
            await worker.run()
        finally:
            await images.aclose()
            await client.aclose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("url")
    p.add_argument("model")
    p.add_argument("mode", choices=["tier", "inline"])
    p.add_argument("timeline", type=Path)
    p.add_argument("--slots", type=int, required=True, help="jobs the worker runs at once")
    p.add_argument("--token-ms", type=float, required=True, help="the engine's pace per token")
    asyncio.run(work(p.parse_args()))


if __name__ == "__main__":
    main()
