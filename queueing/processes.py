"""How a process names itself and says where it serves, in entries other processes read."""

from __future__ import annotations

import os
import secrets
import socket

_WILDCARDS = {"", "0.0.0.0", "::"}


def process_name() -> str:
    """``{hostname}-{pid}-{random}``: unique per process, readable in XINFO and status."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def advertised_url(host: str, port: int) -> str:
    """``http://host:port`` for a server bound to ``host`` (a wildcard bind: the hostname)."""
    shown = socket.gethostname() if host.strip("[]") in _WILDCARDS else host
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    return f"http://{shown}:{port}"
