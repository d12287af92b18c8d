"""``inferq autoscaler``: wire the autoscaler loop to its actuator, metrics and signals."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import start_http_server

from autoscaler.actuator import Actuator, DryRunActuator, LocalActuator
from autoscaler.kubernetes import KubernetesActuator
from autoscaler.loop import Autoscaler
from autoscaler.metrics import AutoscalerMetrics
from queueing.connection import Client, connect
from queueing.processes import advertised_url, process_name
from queueing.settings import Settings

log = logging.getLogger(__name__)


def actuator_for(settings: Settings, client: Client, dry_run: bool) -> Actuator:
    """The actuator the settings name (``--dry-run`` wins)."""
    kind = "dry-run" if dry_run else settings.autoscaler.actuator
    if kind == "dry-run":
        return DryRunActuator()
    if kind == "kubernetes":
        scaler = settings.autoscaler
        return KubernetesActuator.from_environment(scaler.k8s_namespace, scaler.k8s_deployment)
    return LocalActuator(client)


async def _serve(settings: Settings, url: str, dry_run: bool) -> None:
    client = await connect(url, load_library=False)
    metrics = AutoscalerMetrics()
    server, _ = start_http_server(
        settings.autoscaler.metrics_port, settings.worker.metrics_host, registry=metrics.registry
    )
    name = process_name()
    log.info(
        "autoscaler %s: metrics at %s/metrics",
        name,
        advertised_url(settings.worker.metrics_host, server.server_port),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        actuator = actuator_for(settings, client, dry_run)
        await Autoscaler(client, settings, actuator, name, metrics).run(stop)
    finally:
        server.shutdown()
        await client.aclose()


def run_autoscaler(settings: Settings, url: str, *, dry_run: bool = False) -> None:
    """Run until SIGTERM/SIGINT; acts only while holding the lease."""
    asyncio.run(_serve(settings, url, dry_run))
