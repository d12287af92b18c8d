"""The hang watchdog: a slow engine is not a hung one; a hung one is told apart in two steps."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from queueing.schemas import SamplingParams
from queueing.settings import WorkerSettings
from workers.engine import Engine, EngineRequest
from workers.heartbeat import Load
from workers.steps import LARGE_PREFILL

log = logging.getLogger(__name__)

PROBE_PROMPT = "ping"
# vLLM runs lower numbers first; job classes use 0 (interactive) and up.
PROBE_PRIORITY = -1


class Watchdog:
    """Watches one engine's steps; says when the worker must stop claiming, and when it must go.

    Progress is an engine step (any step that produced output for any running request,
    whether or not the job streams tokens). While the engine has work (jobs, or a probe
    it has not answered) and makes no step for longer than :meth:`limit_s`, it is
    *stalled*: :attr:`stalled` says why and the
    worker stops claiming; a step clears it. ``on_unhealthy(reason)`` is called once
    when the worker must give its jobs back and exit: the probe raised an error, the
    engine is gone, or no step came for ``hang_s`` (or the limit, if longer); also when
    a probe sent while stalled got no answer within ``probe_timeout_s`` and another
    healthy worker serves the model (``peers()`` > 0). The only healthy worker keeps
    its jobs through probe timeouts: giving them back would help no one.
    """

    def __init__(
        self,
        engine: Engine,
        load: Callable[[], Load],
        on_unhealthy: Callable[[str], None],
        settings: WorkerSettings,
        *,
        peers: Callable[[], Awaitable[int]],
        prompt_s_per_token: float | None = None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.load = load
        self.on_unhealthy = on_unhealthy
        self.settings = settings
        self.peers = peers
        self.prompt_s_per_token = prompt_s_per_token
        self.on_change = on_change
        self.probes_ok = 0
        self.stalled: str | None = None
        self._stalled_since: float | None = None
        self._busy_since: float | None = None
        self._probe_sent: float | None = None  # the probe in flight
        self._unanswered: float | None = None  # the first probe that timed out unanswered
        self._overdue = False  # a probe sent while stalled timed out
        self._tick_s = min(1.0, settings.stall_s / 4)
        self._last_tick = time.monotonic()

    async def run(self) -> None:
        """Check every fraction of ``stall_s`` and probe alongside, until cancelled."""
        probing = asyncio.create_task(self._probe_loop(), name="probe")
        try:
            while True:
                if (reason := await self.check()) is not None:
                    self.on_unhealthy(reason)
                    return
                await asyncio.sleep(self._tick_s)
        finally:
            probing.cancel()
            await asyncio.gather(probing, return_exceptions=True)

    def limit_s(self) -> float:
        """How long the engine may go without a step while it has work, at its own pace.

        ``stall_s``, or ``stall_pace_factor`` times the longest recent step, or times the
        expected time of the prefill the next step may take on (at the engine's slowest
        recent prefill rate, else ``prompt_s_per_token`` from calibration), if longer. A
        large prefill at a rate not known yet may take up to ``hang_s``.
        """
        s = self.settings
        steps = self.engine.steps
        expected = steps.pace_s()
        pending = self.engine.prefill_tokens()
        if pending >= LARGE_PREFILL:
            per_token = steps.prefill_s_per_token() or self.prompt_s_per_token
            if per_token is None:
                return max(s.stall_s, s.hang_s)
            expected = max(expected, per_token * pending)
        return max(s.stall_s, s.stall_pace_factor * expected)

    async def check(self) -> str | None:
        """Update :attr:`stalled`; returns why the worker must go now, or ``None``."""
        if not self.engine.alive():
            return "the engine is gone (its process died or its output loop failed)"
        now = time.monotonic()
        paused = now - self._last_tick > 4 * self._tick_s + 1.0
        self._last_tick = now
        last_step = self.engine.steps.last_at
        if self._unanswered is not None and last_step > self._unanswered:
            self._unanswered = None
        busy = self.load().jobs > 0 or self._probe_sent is not None or self._unanswered is not None
        if not busy:
            self._busy_since = None
            self._set_stalled(None)
            return None
        if self._busy_since is None or paused:  # a paused process (SIGSTOP) is not a stall
            self._busy_since = now
        quiet_s = now - max(self._busy_since, last_step)
        limit_s = self.limit_s()
        if quiet_s <= limit_s:
            self._set_stalled(None)
            return None
        self._set_stalled(f"engine made no step for {quiet_s:.1f}s (limit {limit_s:.1f}s)")
        if quiet_s > max(self.settings.hang_s, limit_s):
            return f"engine made no step for {quiet_s:.0f}s while it had work"
        if self._overdue and await self._peers():
            timeout_s = self.settings.probe_timeout_s
            return (
                f"engine made no step for {quiet_s:.0f}s and a probe got no answer "
                f"within {timeout_s:g}s; another worker serves the model"
            )
        return None

    def _set_stalled(self, reason: str | None) -> None:
        was = self.stalled
        self.stalled = reason
        if (was is None) == (reason is None):
            return
        if reason is None:
            log.info("engine steps again; claiming again")
            self._stalled_since = None
            self._overdue = False
        else:
            log.warning("%s; not claiming until it steps again", reason)
            self._stalled_since = time.monotonic()
        self.on_change()

    async def _peers(self) -> int:
        try:
            return await self.peers()
        except Exception as exc:  # unknown: keep the jobs, as if alone
            log.warning("could not read the other workers' heartbeats: %r", exc)
            return 0

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.probe_every_s)
            if (reason := await self.probe()) is not None:
                self.on_unhealthy(reason)
                return

    async def probe(self) -> str | None:
        """Send one probe; returns why the engine must be given up, or ``None``.

        An answer counts in :attr:`probes_ok`; no answer within ``probe_timeout_s`` is no
        verdict by itself (a busy engine may answer late), only evidence for :meth:`check`.
        """
        request = EngineRequest(
            request_id=f"probe-{secrets.token_hex(6)}",
            prompt=PROBE_PROMPT,
            params=SamplingParams(max_tokens=1, temperature=0.0),
            priority=PROBE_PRIORITY,
        )
        sent = self._probe_sent = time.monotonic()
        try:
            async with asyncio.timeout(self.settings.probe_timeout_s):
                async for _ in self.engine.generate(request):
                    pass
        except TimeoutError:
            await self._abort(request.request_id)
            self._unanswered = self._unanswered or sent
            if self._stalled_since is not None and sent >= self._stalled_since:
                self._overdue = True
            log.warning("engine probe got no answer within %gs", self.settings.probe_timeout_s)
            return None
        except Exception as exc:
            return f"engine probe failed: {exc}"
        finally:
            self._probe_sent = None
        log.debug("probe answered in %.3fs", time.monotonic() - sent)
        self.probes_ok += 1
        self._unanswered = None
        return None

    async def _abort(self, request_id: str) -> None:
        try:
            async with asyncio.timeout(1.0):
                await self.engine.abort(request_id)
        except Exception as exc:  # the engine is already judged unwell
            log.warning("aborting the probe failed: %r", exc)
