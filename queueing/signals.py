"""The registries' view of the running processes, and each model's stored capacities.

``inferq status``, the metrics and the autoscaler read the same figures: processes here,
queue depths in :mod:`queueing.figures`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from queueing import keys
from queueing.connection import Client
from queueing.errors import translated


async def read_processes(client: Client) -> list[dict[str, Any]]:
    """API processes and workers: ``health`` is stale once the alive key expired, else what
    the process says (a worker whose engine stopped stepping says stalled, and why)."""
    with translated("cannot read the process registries"):
        apis: dict[str, str] = await client.hgetall(keys.API_PROCESSES)
        workers: dict[str, str] = await client.hgetall(keys.WORKERS)
        names = [("api", n) for n in sorted(apis)] + [("worker", n) for n in sorted(workers)]
        async with client.pipeline(transaction=False) as pipe:
            for kind, name in names:
                pipe.exists(keys.api_heartbeat(name) if kind == "api" else keys.heartbeat(name))
            alive: list[int] = await pipe.execute()
    now = time.time()
    processes: list[dict[str, Any]] = []
    for (kind, name), up in zip(names, alive, strict=True):
        entry = json.loads(apis[name] if kind == "api" else workers[name])
        said = entry.pop("health", "ok")
        process: dict[str, Any] = {"kind": kind, "id": name, "health": said if up else "stale"}
        if kind == "worker":
            last = float(entry.get("last_progress") or 0)
            entry["since_progress_s"] = round(now - last, 1) if last else None
            entry.pop("last_progress", None)
        process.update(entry)
        process["metrics_url"] = entry.get("metrics_url") or None
        processes.append(process)
    return processes


async def read_capacities(client: Client, model: str) -> dict[str, float]:
    """Replica type -> its calibrated capacity in units/s, as ``inferq calibrate`` stored it."""
    with translated(f"cannot read the capacities of {model}"):
        raw: dict[str, str] = await client.hgetall(keys.capacity(model))
    return {replica: float(json.loads(value)["units_per_s"]) for replica, value in raw.items()}
