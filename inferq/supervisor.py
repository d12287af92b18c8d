"""A small process supervisor for ``inferq up``: start children, restart the dead, stop all.

Children may belong to a worker pool: :meth:`Supervisor.scale` starts or stops (SIGTERM: the
worker drains its jobs first) the pool's workers to a count. A dead child is restarted after
a growing delay, without holding up the loop that watches the others.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    pool: str | None = None
    restart_at: float | None = None  # when a dead child is started again
    stopping: bool = False  # asked to stop: not restarted, forgotten once it exits

    def start(self) -> None:
        """Spawn the process."""
        self.proc = subprocess.Popen(self.argv, env={**os.environ, **self.env})
        self.started_at = time.monotonic()
        self.restart_at = None

    def alive(self) -> bool:
        """Running now."""
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    """Keeps children running; a child that dies is restarted with a growing delay."""

    def __init__(self, console: Console, program: list[str] | None = None) -> None:
        self.console = console
        self.program = program or [sys.executable, "-m", "inferq"]  # children run it with args
        self.children: list[Child] = []
        self.lock = threading.RLock()  # pool scaling runs in another thread
        self._stopping = False
        self._serial = 0

    def add(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        pool: str | None = None,
        program: list[str] | None = None,
    ) -> Child:
        """Register and start ``python -m inferq <args>`` (or ``program`` and ``args``) as
        ``name``."""
        child = Child(name, [*(program or self.program), *args], env, pool=pool)
        with self.lock:
            child.start()
            self.children.append(child)
        self.console.print(
            f"[green]started[/] {name} (pid {child.proc.pid if child.proc else '?'})"
        )
        return child

    def pool(self, pool: str) -> list[Child]:
        """The pool's children not asked to stop (running, or waiting for a restart)."""
        with self.lock:
            return [c for c in self.children if c.pool == pool and not c.stopping]

    def scale(
        self, pool: str, count: int, spawn: Callable[[int], tuple[list[str], dict[str, str]]]
    ) -> None:
        """Run ``count`` children of ``pool``: new ones from ``spawn(serial)`` (args, env); the
        newest are stopped first (SIGTERM: a worker finishes its jobs, then exits)."""
        with self.lock:
            if self._stopping:
                return
            members = self.pool(pool)
            for _ in range(count - len(members)):
                self._serial += 1
                args, env = spawn(self._serial)
                self.add(f"{pool}-{self._serial}", args, env, pool=pool)
            for child in sorted(members, key=lambda c: c.started_at)[count:]:
                self.stop_child(child)

    def stop_child(self, child: Child) -> None:
        """Ask ``child`` to stop (SIGTERM); it is not restarted."""
        with self.lock:
            child.stopping = True
            if child.alive() and child.proc is not None:
                child.proc.terminate()
                self.console.print(f"stopping {child.name} (drains first)")

    def kill(self, child: Child, why: str) -> None:
        """SIGKILL ``child`` (it is restarted like any child that died)."""
        with self.lock:
            if child.alive() and child.proc is not None:
                self.console.print(f"[red]killing {child.name}[/]: {why}")
                child.proc.kill()

    def run(self, poll_s: float = 0.5) -> None:
        """Watch the children until SIGINT/SIGTERM, then stop them all."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        while not self._stopping:
            with self.lock:
                for child in list(self.children):
                    self._check(child)
            time.sleep(poll_s)
        self.stop()

    def _check(self, child: Child) -> None:
        now = time.monotonic()
        if child.proc is None or child.proc.poll() is None:
            return
        if child.stopping:
            self.children.remove(child)
            self.console.print(f"stopped {child.name} ({child.proc.returncode})")
            return
        if child.restart_at is None:
            quick = now - child.started_at < 60
            delay = min(30.0, 2.0**child.restarts) if quick else 1.0
            child.restart_at = now + delay
            self.console.print(
                f"[red]{child.name} exited with {child.proc.returncode}[/]; "
                f"restarting in {delay:.0f}s"
            )
        elif now >= child.restart_at:
            child.restarts += 1
            child.start()

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stopping = True

    def stop(self, timeout_s: float = 45.0) -> None:
        """SIGTERM every child, wait (workers drain), then SIGKILL what is left."""
        with self.lock:
            children = list(self.children)
        for child in children:
            if child.alive() and child.proc is not None:
                child.proc.terminate()
        deadline = time.monotonic() + timeout_s
        for child in children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
            self.console.print(f"stopped {child.name}")
