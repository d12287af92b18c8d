"""``inferq status``: the running processes, each model's queue depths, every metrics URL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

from queueing.catalogue import Catalogue
from queueing.connection import connect
from queueing.errors import ServerError
from queueing.figures import read_figures
from queueing.pools import PoolDecision, lease_holder, read_decisions, read_running
from queueing.settings import QueueSettings, Settings
from queueing.signals import read_processes

CONNECT_TIMEOUT_S = 2.0


class NotRunning(RuntimeError):
    """No queue server answers at the URL inferq would use."""


def queue_url(settings: Settings) -> str:
    """``INFERQ_REDIS__URL``, else where ``inferq up`` runs its embedded server."""
    return settings.redis.url or f"redis://127.0.0.1:{settings.redis.embedded_port}"


async def read_status(url: str, models: Iterable[str], settings: QueueSettings) -> dict[str, Any]:
    """Processes, queues (``models`` and every model a worker serves) and metrics URLs.

    Reads only; raises :class:`NotRunning` when nothing answers at ``url``.
    """
    try:
        client = await connect(
            url,
            load_library=False,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=CONNECT_TIMEOUT_S,
        )
    except ServerError as exc:
        raise NotRunning(f"inferq is not running (no queue server at {url})") from exc
    try:
        processes = await read_processes(client)
        served = {str(p["model"]) for p in processes if p["kind"] == "worker"}
        figures = await read_figures(client, settings, sorted(set(models) | served))
        queues = [model.as_dict() for model in figures.values()]
        pools = _pools(processes, await read_decisions(client), await read_running(client))
        autoscaler = await lease_holder(client)
    finally:
        await client.aclose()
    return {
        "queue_server": url,
        "processes": processes,
        "queues": queues,
        "pools": pools,
        "autoscaler": autoscaler,
        "metrics_urls": [p["metrics_url"] for p in processes if p["metrics_url"]],
    }


def _pools(
    processes: list[dict[str, Any]], decisions: dict[str, PoolDecision], running: dict[str, int]
) -> list[dict[str, Any]]:
    """Each pool: the autoscaler's last decision and reason, and its workers now."""
    rows = []
    for pool in sorted(set(decisions) | set(running)):
        workers = [p for p in processes if p["kind"] == "worker" and p.get("pool") == pool]
        ready = sum(1 for w in workers if w["health"] == "ok")
        decided = decisions.get(pool)
        runs = running.get(pool)
        rows.append(
            {
                "pool": pool,
                "model": decided.model if decided else None,
                "desired": decided.desired if decided else None,
                "running": runs,
                "starting": max(0, runs - len(workers)) if runs is not None else None,
                "ready": ready,
                "unhealthy": len(workers) - ready,
                "reason": decided.reason if decided else None,
                "decided_at": decided.at if decided else None,
            }
        )
    return rows


def render(report: dict[str, Any], console: Console) -> None:
    """The report as tables for people, then every metrics URL in full."""
    console.print(f"inferq at [bold]{report['queue_server']}[/]")
    processes = report["processes"]
    console.print(_process_table(processes) if processes else "no API or worker registered")
    console.print(_queue_table(report["queues"]))
    if report["pools"]:
        console.print(_pool_table(report["pools"]))
    if report["autoscaler"]:
        console.print(f"autoscaler: {report['autoscaler']} holds the lease", markup=False)
    console.print("metrics:")
    for p in processes:
        if p["metrics_url"]:
            line = f"  {p['kind']} {p['id']}: {p['metrics_url']}"
            console.print(line, markup=False, soft_wrap=True)


_HEALTH = {"ok": "[green]ok[/]", "stalled": "[yellow]stalled[/]", "stale": "[red]stale[/]"}


def _process_table(processes: list[dict[str, Any]]) -> Table:
    table = Table(title="Processes")
    for column in ("kind", "id", "health", "model", "pid"):
        table.add_column(column, overflow="fold")
    for column in ("units", "jobs", "tok/s", "progress"):
        table.add_column(column, justify="right")
    for p in processes:
        health = _HEALTH.get(p["health"], p["health"])
        if p.get("stalled"):
            health += f": {p['stalled']}"
        fields = ("model", "pid", "in_flight_units", "in_flight_jobs", "tokens_per_s")
        cells = ["-" if p.get(f) is None else str(p[f]) for f in fields]
        since = p.get("since_progress_s")
        progress = "-" if since is None else f"{since:g} s ago"
        table.add_row(p["kind"], p["id"], health, *cells, progress)
    return table


def _queue_table(models: list[dict[str, Any]]) -> Table:
    table = Table(title="Queues")
    table.add_column("model")
    table.add_column("queue")
    table.add_column("jobs", justify="right")
    table.add_column("units", justify="right")
    for m in models:
        name = m["model"]
        table.add_row(name, "[bold]queued[/]", str(m["queued_jobs"]), f"{m['queued_units']:g}")
        table.add_row(name, "[bold]in flight[/]", "", f"{m['inflight_units']:g}")
        for q in m["queues"]:
            table.add_row(name, f"  {q['class']}:{q['band']}", str(q["jobs"]), f"{q['units']:g}")
    return table


def _pool_table(pools: list[dict[str, Any]]) -> Table:
    table = Table(title="Pools")
    table.add_column("pool")
    for column in ("desired", "starting", "ready", "unhealthy"):
        table.add_column(column, justify="right")
    table.add_column("last decision", overflow="fold")
    for p in pools:
        cells = ["-" if p[f] is None else str(p[f]) for f in ("desired", "starting", "ready")]
        table.add_row(p["pool"], *cells, str(p["unhealthy"]), p["reason"] or "-")
    return table


def show(settings: Settings, console: Console, *, as_json: bool) -> None:
    """Print the status of the inferq that ``settings`` point at: tables, or one JSON object."""
    models = Catalogue.load(settings.models_dir, settings.catalogue).names()
    report = asyncio.run(read_status(queue_url(settings), models, settings.queue))
    if as_json:
        console.out(json.dumps(report, indent=2), highlight=False)
    else:
        render(report, console)
