"""The preprocess worker's handler: prepare a job's images in a process pool, then hand it on.

Each source is read (``data:`` URL, uploaded file), named by its content hash and prepared
once: an image already stored (in the job's partition, or another of the model's) or being
prepared by this worker is reused. A bad image fails the job with the reason; the worker
goes on serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from concurrent.futures import Executor
from typing import Any

from prometheus_client import Counter

from preprocess.keys import prepared_key
from preprocess.prepare import prepare
from queueing.catalogue import Catalogue
from queueing.connection import Client
from queueing.cost import with_prepared_images
from queueing.errors import InvalidImage, ServerError
from queueing.figures import read_figures
from queueing.images import PreparedImages, reference
from queueing.prequeue import PreQueue
from queueing.presence import Presence
from queueing.schemas import JobRecord
from queueing.settings import PreprocessSettings, WorkerSettings
from workers.claimloop import ClaimStep, LoopControl
from workers.heartbeat import Load, Progress, heartbeat
from workers.image_sources import ImageSources
from workers.jobrun import JobRun
from workers.metrics import MetricsEndpoint

log = logging.getLogger(__name__)

IMAGE_OUTCOMES = ("prepared", "reused", "invalid")
JOB_OUTCOMES = ("handed_off", "failed", "dropped")


class PreprocessMetrics(MetricsEndpoint):
    """Images prepared or reused, and jobs handed on or failed."""

    def __init__(self) -> None:
        super().__init__()
        self.images = Counter(
            "inferq_preprocess_images",
            "Images by outcome: prepared, reused (prepared before), invalid",
            ["outcome"],
            registry=self.registry,
        )
        self.jobs = Counter(
            "inferq_preprocess_jobs",
            "Jobs by outcome: handed_off to the model queue, failed, dropped (not ours)",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in IMAGE_OUTCOMES:
            self.images.labels(outcome=outcome)
        for outcome in JOB_OUTCOMES:
            self.jobs.labels(outcome=outcome)

    def count(self, outcome: str) -> float:
        """Images so far with ``outcome``."""
        return float(
            self.registry.get_sample_value("inferq_preprocess_images_total", {"outcome": outcome})
            or 0
        )


class PreprocessHandler:
    """Holds at most ``slots`` jobs (a few per pool process) and prepares their images."""

    def __init__(
        self,
        client: Client,
        queue: PreQueue,
        images: PreparedImages,
        sources: ImageSources,
        catalogue: Catalogue,
        pool: Executor,
        slots: int,
        settings: PreprocessSettings,
        worker_settings: WorkerSettings,
    ) -> None:
        self.client = client
        self.queue = queue
        self.images = images
        self.sources = sources
        self.catalogue = catalogue
        self.pool = pool
        self.slots = slots
        self.settings = settings
        self.worker_settings = worker_settings
        self.runs: dict[str, JobRun] = {}
        self.metrics = PreprocessMetrics()
        self.health: dict[str, object] = {"health": "ok"}
        self._preparing: dict[str, asyncio.Future[bytes | None]] = {}
        self._presence: Presence | None = None

    def attach(self, control: LoopControl) -> None:
        """Nothing to report to the loop but the end of runs (the loop sees those)."""

    def paused(self) -> bool:
        """Never: a bad image fails its job, not the worker."""
        return False

    def load(self) -> Load:
        """Jobs held (images count no model units)."""
        return Load(0.0, len(self.runs))

    async def claim(self) -> ClaimStep:
        """As many jobs as it has free slots."""
        free = self.slots - len(self.runs)
        if free <= 0:
            return ClaimStep(for_work=False)
        return ClaimStep(await self.queue.claim(free))

    def reclaimable(self) -> int:
        """Free slots."""
        return max(0, self.slots - len(self.runs))

    async def drained(self) -> bool:
        """No job waits for preparation in any lane."""
        models = sorted({model for model, _ in self.queue.lanes})
        figures = await read_figures(self.client, self.queue.settings, models)
        return all(f.preparing_jobs == 0 for f in figures.values())

    async def run(self, run: JobRun) -> None:
        """Prepare every image of the job, then hand it on, or fail it with the reason."""
        job = run.job
        record = job.record
        try:
            spec = self.catalogue.get(record.model)
            digests = [
                await self._image(job.partition, record, i) for i in range(len(record.images))
            ]
            prompt_tokens, estimate = with_prepared_images(
                spec,
                prompt_tokens=record.prompt_tokens,
                units=record.estimated_units,
                images=len(record.images),
                image_tokens=len(digests) * spec.image_tokens,
            )
            if run.lost:
                return
            refs = [reference(d) for d in digests]
            code = await self.queue.handoff(job, spec, refs, digests, prompt_tokens, estimate)
            self._count_job(code, "handed_off")
        except InvalidImage as exc:
            await self._fail(run, exc.message, InvalidImage.code)
        except ServerError as exc:
            log.warning("job %s: queue server error (%s); left to its lease", job.id, exc)
        except Exception as exc:
            log.exception("job %s: unexpected error", job.id)
            await self._fail(run, f"internal preprocess error: {type(exc).__name__}: {exc}")

    async def _image(self, partition: int, record: JobRecord, index: int) -> str:
        """The content hash of the job's image ``index``, prepared and stored in ``partition``."""
        where = f"image {index + 1} of {len(record.images)}"
        try:
            raw = await self.sources.read(record.images[index], record.tenant)
        except InvalidImage as exc:
            self.metrics.images.labels(outcome="invalid").inc()
            raise InvalidImage(f"{where}: {exc.message}") from None
        digest = prepared_key(raw, self.settings)
        if await self.images.refresh(partition, digest):
            self.metrics.images.labels(outcome="reused").inc()
            return digest
        data = await self._prepared(partition, record.model, digest, raw, where)
        await self.images.put(partition, digest, data)
        return digest

    async def _prepared(
        self, partition: int, model: str, digest: str, raw: bytes, where: str
    ) -> bytes:
        """The prepared bytes: from another partition, from a preparation under way, or made
        now in the pool."""
        pending = self._preparing.get(digest)
        if pending is not None and (ready := await asyncio.shield(pending)) is not None:
            self.metrics.images.labels(outcome="reused").inc()
            return ready
        others = [p for p in range(self.queue.settings.partitions_of(model)) if p != partition]
        found = await self.images.find(others, digest)
        if found is not None:
            self.metrics.images.labels(outcome="reused").inc()
            return found[1]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | None] = loop.create_future()
        self._preparing[digest] = future
        data: bytes | None = None  # None: those waiting on it prepare it themselves
        try:
            data = (await loop.run_in_executor(self.pool, prepare, raw, self.settings)).data
        except InvalidImage as exc:
            self.metrics.images.labels(outcome="invalid").inc()
            raise InvalidImage(f"{where}: {exc.message}") from None
        finally:
            future.set_result(data)
            self._preparing.pop(digest, None)
        self.metrics.images.labels(outcome="prepared").inc()
        assert data is not None
        return data

    async def _fail(self, run: JobRun, reason: str, code: str = "") -> None:
        if run.lost:
            return
        log.info("job %s: failed in preprocessing: %s", run.job.id, reason)
        try:
            self._count_job(await self.queue.fail(run.job, reason, code), "failed")
        except ServerError as exc:
            log.warning("job %s: left to its lease (%s)", run.job.id, exc)

    def _count_job(self, code: int, outcome: str) -> None:
        self.metrics.jobs.labels(outcome=outcome if code == 1 else "dropped").inc()

    async def interrupt(
        self, run: JobRun, *, lost: bool = False, cancelled: bool = False, shutdown: bool = False
    ) -> None:
        """Note why; a preparation under way finishes (its hand-off then does nothing)."""
        run.lost |= lost
        run.cancelled |= cancelled
        run.shutdown |= shutdown

    async def give_back(self, run: JobRun, reason: str) -> None:
        """Leave the job to its lease (another worker takes it over)."""
        log.info("job %s: left to its lease (%s)", run.job.id, reason)

    def services(self) -> list[Coroutine[Any, Any, None]]:
        """Metrics (served from a thread) and the heartbeat."""
        ws = self.worker_settings
        url = self.metrics.start(ws.metrics_host, ws.metrics_port)
        self._presence = heartbeat(
            self.client,
            self.queue.consumer,
            "",
            Progress(),
            self.load,
            url,
            lambda: self.health,
            {"kind": "preprocess"},
        )
        return [self._presence.run()]

    async def close(self) -> None:
        """Leave the registry and stop serving metrics."""
        if self._presence is not None:
            with contextlib.suppress(ServerError):
                await self._presence.clear()
        await asyncio.to_thread(self.metrics.stop)
