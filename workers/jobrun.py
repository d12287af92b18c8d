"""Running one claimed job through the engine and recording exactly one outcome."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from queueing.errors import ServerError
from queueing.images import ImageMissing, PreparedImages, is_reference
from queueing.schemas import JobRecord, JobResult, JobStatus, TokenLogprob, Usage
from queueing.settings import WorkerSettings
from queueing.workqueue import ClaimedJob, EmitOutcome, WorkQueue
from workers.coalesce import TokenCoalescer
from workers.engine import Engine, EngineDelta, EngineError, EngineRequest
from workers.heartbeat import Progress

log = logging.getLogger(__name__)

SHUTDOWN_REASON = "worker shutting down"
PREEMPTED_REASON = "preempted: work of a higher class waits; the job runs again later"
_ABORT_TIMEOUT_S = 1.0


def engine_priority(record: JobRecord) -> int:
    """The engine's priority (lower runs first): class first, then the cheaper band."""
    return record.job_class.rank * 100 + record.band


@dataclass
class JobRun:
    """A job in flight on this worker, and why it was interrupted, if it was."""

    job: ClaimedJob
    lost: bool = False
    cancelled: bool = False
    shutdown: bool = False
    preempted: bool = False  # a batch job given back to make room for higher-class work
    aborted: bool = False
    settling: bool = False  # out of the engine; its outcome is being written
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def units(self) -> float:
        """The job's estimated cost."""
        return self.job.record.estimated_units


@dataclass
class _Output:
    parts: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None
    last: EngineDelta | None = None
    reported: int = 0  # completion tokens as the engine counts them
    counted: int = 0  # our own count, for engines that report none

    def add(self, delta: EngineDelta) -> int:
        """Record ``delta``; returns how many new tokens it carries."""
        self.last = delta
        if delta.completion_tokens:
            new = max(0, delta.completion_tokens - self.reported)
            self.reported = max(self.reported, delta.completion_tokens)
        else:
            new = 1 if delta.text else 0
        self.counted += new
        if delta.text:
            self.parts.append(delta.text)
        if delta.logprobs is not None:
            self.logprobs = self.logprobs or []
            self.logprobs.extend(delta.logprobs)
        return new


class JobRunner:
    """Streams a job's output into its event stream, then completes, releases or drops it.

    ``on_outcome`` hears each outcome recorded: a final status's value, or ``released``;
    ``on_engine_done`` hears that a run left the engine (its outcome, maybe waiting for an
    fsync, no longer takes engine room).
    """

    def __init__(
        self,
        queue: WorkQueue,
        engine: Engine,
        settings: WorkerSettings,
        progress: Progress,
        on_outcome: Callable[[str], None] | None = None,
        on_engine_done: Callable[[], None] | None = None,
        images: PreparedImages | None = None,
    ) -> None:
        self.queue = queue
        self.images = images
        self.engine = engine
        self.settings = settings
        self.progress = progress
        self.on_outcome = on_outcome
        self.on_engine_done = on_engine_done

    async def interrupt(
        self,
        run: JobRun,
        *,
        lost: bool = False,
        cancelled: bool = False,
        shutdown: bool = False,
        preempted: bool = False,
    ) -> None:
        """Mark why the run must stop and abort its engine request (once)."""
        run.lost |= lost
        run.cancelled |= cancelled
        run.shutdown |= shutdown
        run.preempted |= preempted
        if not run.aborted:
            run.aborted = True
            try:
                async with asyncio.timeout(_ABORT_TIMEOUT_S):
                    await self.engine.abort(run.job.id)
            except Exception:
                log.exception("job %s: engine abort failed", run.job.id)

    async def run(self, run: JobRun) -> None:
        """Run the job to one outcome; never raises (except when the task is cancelled)."""
        job = run.job
        out = _Output()
        try:
            await self._generate(run, out)
            run.settling = True
            if self.on_engine_done is not None:
                self.on_engine_done()
            await self._settle(run, out)
        except asyncio.CancelledError:
            await self.interrupt(run)
            raise
        except EngineError as exc:
            await self._engine_failed(run, exc)
        except ImageMissing as exc:
            await self._complete(run, JobStatus.FAILED, error=str(exc))
        except ServerError as exc:
            log.warning("job %s: queue server error (%s); giving it back", job.id, exc)
            await self.give_back(run, f"worker lost the queue server: {exc}")
        except Exception as exc:
            log.exception("job %s: unexpected error", job.id)
            await self._fail(run, f"internal worker error: {type(exc).__name__}: {exc}")

    async def _generate(self, run: JobRun, out: _Output) -> None:
        record = run.job.record
        request = EngineRequest(
            request_id=run.job.id,
            prompt=record.prompt,
            params=record.params,
            priority=engine_priority(record),
            deltas=record.stream_tokens,
            images=await self._images(record),
        )
        coalescer = TokenCoalescer(
            lambda text, logprobs: self._send(run, text, logprobs),
            flush_ms=self.settings.flush_ms,
            flush_tokens=self.settings.flush_tokens,
        )
        try:
            async for delta in self.engine.generate(request):
                tokens = out.add(delta)
                if tokens:
                    self.progress.note(tokens)
                if (delta.text or delta.logprobs) and not (run.lost or run.cancelled):
                    await coalescer.add(delta.text, max(tokens, 1), delta.logprobs)
            if not (run.lost or run.cancelled):
                await coalescer.flush()
        finally:
            await coalescer.aclose()

    async def _images(self, record: JobRecord) -> tuple[bytes, ...]:
        """The job's prepared images (the preprocess tier stored them in its partition)."""
        if not record.images:
            return ()
        if self.images is None or not all(map(is_reference, record.images)):
            raise ImageMissing("the job's images were not prepared (no preprocess tier ran)")
        return tuple(await self.images.read(record.id, record.images))

    async def _send(self, run: JobRun, text: str, logprobs: list[TokenLogprob]) -> None:
        if run.lost or run.cancelled:
            return
        event: dict[str, object] = {"text": text}
        if logprobs:
            event["logprobs"] = [entry.model_dump() for entry in logprobs]
        data = json.dumps(event, ensure_ascii=False)
        outcome = await self.queue.emit(run.job, [("tokens", data)])
        if outcome == EmitOutcome.LOST:
            log.info("job %s: emit refused, another worker owns it; aborting", run.job.id)
            await self.interrupt(run, lost=True)
        elif outcome == EmitOutcome.CANCELLED:
            await self.interrupt(run, cancelled=True)

    async def _settle(self, run: JobRun, out: _Output) -> None:
        job = run.job
        last = out.last
        completion = out.reported or out.counted
        prompt = last.prompt_tokens if last and last.prompt_tokens else job.record.prompt_tokens
        usage = Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )
        reason = last.finish_reason if last else None
        if run.lost:
            log.info("job %s: dropped (lost its lease to another worker)", job.id)
        elif run.cancelled:
            await self._complete(run, JobStatus.CANCELLED, usage=usage)
        elif reason == "abort" and run.preempted and not run.shutdown:
            await self._release(run, PREEMPTED_REASON, graceful=True, outcome="preempted")
        elif reason == "abort":
            why = SHUTDOWN_REASON if run.shutdown else "the engine aborted the request"
            await self._release(run, why, graceful=run.shutdown)
        else:
            result = JobResult(
                text="".join(out.parts),
                finish_reason=reason,
                tool_calls=last.tool_calls if last else None,
                logprobs=out.logprobs,
            )
            await self._complete(run, JobStatus.SUCCEEDED, result=result, usage=usage)

    async def _complete(
        self,
        run: JobRun,
        status: JobStatus,
        *,
        result: JobResult | None = None,
        usage: Usage | None = None,
        error: str | None = None,
    ) -> None:
        code = await self.queue.complete(run.job, status, result=result, usage=usage, error=error)
        if code < 0:
            log.info("job %s: complete refused, another worker owns it", run.job.id)
            await self.interrupt(run, lost=True)
        elif code == 0:
            log.info("job %s: already finished; nothing recorded", run.job.id)
        elif self.on_outcome is not None:
            self.on_outcome(status.value)

    async def _release(
        self, run: JobRun, reason: str, *, graceful: bool, outcome: str = "released"
    ) -> None:
        if await self.queue.release(run.job, reason, graceful=graceful) and self.on_outcome:
            self.on_outcome(outcome)

    async def _engine_failed(self, run: JobRun, exc: EngineError) -> None:
        await self.interrupt(run)
        try:
            if run.lost:
                return
            if run.cancelled:
                await self._complete(run, JobStatus.CANCELLED)
            elif exc.retryable or run.shutdown or run.preempted:
                log.info("job %s: engine error (%s); releasing it", run.job.id, exc)
                await self._release(run, str(exc), graceful=run.shutdown or run.preempted)
            else:
                await self._complete(run, JobStatus.FAILED, error=str(exc))
        except ServerError as err:
            log.warning("job %s: could not record the engine error (%s)", run.job.id, err)

    async def _fail(self, run: JobRun, message: str) -> None:
        """After a bug on this side: the job fails with ``message``."""
        await self.interrupt(run)
        if run.lost:
            return
        try:
            await self._complete(run, JobStatus.FAILED, error=message)
        except ServerError as err:
            log.warning("job %s: left to its lease (%s)", run.job.id, err)

    async def give_back(self, run: JobRun, reason: str) -> None:
        """Release the job (a delivery counted), or leave it for its lease to lapse."""
        await self.interrupt(run)
        if run.lost:
            return
        try:
            await self._release(run, reason, graceful=False)
        except ServerError as err:
            log.warning("job %s: left to its lease (%s)", run.job.id, err)
