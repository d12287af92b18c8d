"""The hang watchdog: a worker whose engine stalls, or fails its probe, must step aside."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable

from queueing.schemas import SamplingParams
from workers.engine import Engine, EngineRequest
from workers.heartbeat import Load, Progress

log = logging.getLogger(__name__)

PROBE_PROMPT = "ping"
# vLLM runs lower numbers first; job classes use 0 (interactive) and up.
PROBE_PRIORITY = -1


class Watchdog:
    """Watches one engine and calls ``on_unhealthy(reason)`` once, when it must stop.

    Unhealthy means: the worker had work for ``stall_s`` seconds without a single new
    output token or probe answer (jobs that stream no tokens show progress only through
    the probe), or a one-token probe sent through the engine every ``probe_every_s``
    at the highest priority did not finish within ``probe_timeout_s`` (or failed).
    """

    def __init__(
        self,
        engine: Engine,
        progress: Progress,
        load: Callable[[], Load],
        on_unhealthy: Callable[[str], None],
        *,
        stall_s: float,
        probe_every_s: float,
        probe_timeout_s: float,
    ) -> None:
        self.engine = engine
        self.progress = progress
        self.load = load
        self.on_unhealthy = on_unhealthy
        self.stall_s = stall_s
        self.probe_every_s = probe_every_s
        self.probe_timeout_s = probe_timeout_s
        self.probes_ok = 0
        self._busy_since: float | None = None
        self._tick_s = min(1.0, stall_s / 4)
        self._last_tick = time.time()

    async def run(self) -> None:
        """Check for stalls every fraction of ``stall_s`` and probe alongside, until cancelled."""
        probing = asyncio.create_task(self._probe_loop(), name="probe")
        try:
            while True:
                if (reason := self.stalled()) is not None:
                    self.on_unhealthy(reason)
                    return
                await asyncio.sleep(self._tick_s)
        finally:
            probing.cancel()
            await asyncio.gather(probing, return_exceptions=True)

    def stalled(self) -> str | None:
        """Why the engine counts as stalled now, or ``None``."""
        now = time.time()
        paused = now - self._last_tick > 4 * self._tick_s + 1.0
        self._last_tick = now
        if self.load().jobs == 0:
            self._busy_since = None
            return None
        if self._busy_since is None or paused:  # a paused process (SIGSTOP) is not a stall
            self._busy_since = now
        quiet_s = now - max(self._busy_since, self.progress.last_progress)
        if quiet_s > self.stall_s:
            return f"engine made no progress for {quiet_s:.0f}s while it had work"
        return None

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.probe_every_s)
            if (reason := await self.probe()) is not None:
                self.on_unhealthy(reason)
                return
            self.probes_ok += 1
            self.progress.answered()

    async def probe(self) -> str | None:
        """Send one probe; returns why it failed, or ``None`` when the engine answered."""
        request = EngineRequest(
            request_id=f"probe-{secrets.token_hex(6)}",
            prompt=PROBE_PROMPT,
            params=SamplingParams(max_tokens=1, temperature=0.0),
            priority=PROBE_PRIORITY,
        )
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.probe_timeout_s):
                async for _ in self.engine.generate(request):
                    pass
        except TimeoutError:
            await self._abort(request.request_id)
            return f"engine probe got no answer within {self.probe_timeout_s:.0f}s"
        except Exception as exc:
            return f"engine probe failed: {exc}"
        log.debug("probe answered in %.3fs", time.monotonic() - started)
        return None

    async def _abort(self, request_id: str) -> None:
        try:
            async with asyncio.timeout(1.0):
                await self.engine.abort(request_id)
        except Exception as exc:  # the engine is already judged unhealthy
            log.warning("aborting the probe failed: %r", exc)
