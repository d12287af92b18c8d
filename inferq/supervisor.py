"""A small process supervisor for ``inferq up``: start children, restart the dead, stop all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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

    def start(self) -> None:
        """Spawn the process."""
        self.proc = subprocess.Popen(self.argv, env={**os.environ, **self.env})
        self.started_at = time.monotonic()


class Supervisor:
    """Keeps children running; a child that dies is restarted with a growing delay."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.children: list[Child] = []
        self._stopping = False

    def add(self, name: str, args: list[str], env: dict[str, str]) -> None:
        """Register and start ``python -m inferq <args>`` as ``name``."""
        child = Child(name, [sys.executable, "-m", "inferq", *args], env)
        child.start()
        self.children.append(child)
        self.console.print(
            f"[green]started[/] {name} (pid {child.proc.pid if child.proc else '?'})"
        )

    def run(self, poll_s: float = 0.5) -> None:
        """Watch the children until SIGINT/SIGTERM, then stop them all."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        while not self._stopping:
            for child in self.children:
                self._check(child)
            time.sleep(poll_s)
        self.stop()

    def _check(self, child: Child) -> None:
        if child.proc is None or child.proc.poll() is None:
            return
        delay = min(30.0, 2.0**child.restarts) if time.monotonic() - child.started_at < 60 else 1.0
        self.console.print(
            f"[red]{child.name} exited with {child.proc.returncode}[/]; restarting in {delay:.0f}s"
        )
        time.sleep(delay)
        child.restarts += 1
        child.start()

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stopping = True

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every child, wait, then SIGKILL what is left."""
        for child in self.children:
            if child.proc and child.proc.poll() is None:
                child.proc.terminate()
        deadline = time.monotonic() + timeout_s
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
            self.console.print(f"stopped {child.name}")
