"""``inferq up`` tells its user what it is doing: starting (with a timer), then serving."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from rich.console import Console


def _readyz(base: str) -> tuple[bool, dict[str, Any]]:
    try:
        response = httpx.get(f"{base}/readyz", timeout=2)
    except httpx.HTTPError:
        return False, {}
    return response.status_code == 200, response.json()


def announce_when_ready(
    base: str, console: Console, stop: threading.Event, *, every_s: float = 10.0
) -> bool:
    """Say every ``every_s`` what inferq still waits for; once ``/readyz`` answers 200, print
    one line with the URL and return True (False if ``stop`` is set first)."""
    start = time.monotonic()
    console.print(
        f"inferq is starting at {base}: the engine takes a minute or so to load", soft_wrap=True
    )
    next_note = start + every_s
    while not stop.wait(0.5):
        ready, body = _readyz(base)
        elapsed = time.monotonic() - start
        if ready:
            console.print(
                f"[bold green]inferq is serving at {base}[/] after {elapsed:.0f} s "
                f"(OpenAI base URL {base}/v1, API docs {base}/docs)",
                soft_wrap=True,
            )
            return True
        if time.monotonic() >= next_note:
            next_note += every_s
            waiting = [m for m, state in body.get("models", {}).items() if state != "serving"]
            what = f"a worker for {', '.join(waiting)}" if waiting else "the API"
            console.print(
                f"inferq is starting ({elapsed:.0f} s): waiting for {what}", soft_wrap=True
            )
    return False
