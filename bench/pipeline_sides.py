"""The HTTP sides of the pipeline bench: vLLM's OpenAI server and inferq, started and driven
the same way (``POST /v1/completions`` with the same bodies from one client)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from bench.pipeline_engine import serve_flags
from bench.watch import Watch, Watched
from bench.workload import Request
from queueing import keys
from queueing.server import EmbeddedValkey
from workers.engines.vllm import VllmConfig

MODEL = "smollm2-135m-instruct"
_START_TIMEOUT_S = 600


@dataclass(frozen=True)
class Done:
    """One finished request as the client saw it."""

    kind: str
    latency_s: float
    tokens: int


@dataclass(frozen=True)
class Run:
    """A batch of requests sent together."""

    done: list[Done]
    elapsed_s: float

    @property
    def tok_s(self) -> float:
        """Output tokens per second over the whole batch."""
        return sum(d.tokens for d in self.done) / self.elapsed_s


async def drive(base_url: str, requests: list[Request]) -> Run:
    """Send every request at once and wait for all the answers."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=base_url, timeout=None, limits=limits) as http:

        async def one(request: Request) -> Done:
            body = {
                "model": MODEL,
                "prompt": request.prompt,
                "max_tokens": request.max_tokens,
                "temperature": 0.0,
                "ignore_eos": True,
            }
            sent = time.perf_counter()
            reply = await http.post("/v1/completions", json=body)
            reply.raise_for_status()
            tokens = int(reply.json()["usage"]["completion_tokens"])
            return Done(request.kind, time.perf_counter() - sent, tokens)

        started = time.perf_counter()
        done = await asyncio.gather(*(one(r) for r in requests))
        return Run(list(done), time.perf_counter() - started)


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not come up within {_START_TIMEOUT_S}s")


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Side:
    """A started side: where to send requests, and what to watch while they run."""

    base: str
    watch: Watch


@contextlib.contextmanager
def vllm_server(config: VllmConfig, port: int, logs: Path) -> Iterator[Side]:
    """``python -m vllm.entrypoints.openai.api_server`` with the shared engine settings."""
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", *serve_flags(config)]
    argv += ["--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(port)]
    log = logs / "vllm-serve.log"
    proc = _spawn(argv, {}, log)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/health", proc, "vllm serve")
        yield Side(base, Watch([Watched("vllm serve", proc, log)]))
    finally:
        _stop(proc)


@contextlib.contextmanager
def inferq_stack(
    port: int,
    redis_port: int,
    unit_budget: float,
    data: Path,
    logs: Path,
    *,
    arq: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[Side]:
    """Embedded Valkey, ``inferq api`` and one ``inferq worker`` (its engine as the worker
    configures it, which :func:`serve_flags` copies for the other sides), and with ``arq``
    ``inferq arq`` for batches (files under ``data``), watched: the worker's heartbeat must
    not say stalled, and no process may exit. ``env`` adds settings (e.g. a catalogue)."""
    with EmbeddedValkey(data, redis_port) as valkey:
        env = {
            **(env or {}),
            "INFERQ_REDIS__URL": valkey.url,
            "INFERQ_API__PORT": str(port),
            "INFERQ_WORKER__UNIT_BUDGET": str(unit_budget),
            "INFERQ_FILES__LOCAL_DIR": str(data / "files"),
        }
        roles = ["api", "worker", *(["arq"] if arq else [])]
        logs_of = {role: logs / f"inferq-{role}.log" for role in roles}
        procs = {r: _spawn([sys.executable, "-m", "inferq", r], env, logs_of[r]) for r in roles}
        base = f"http://127.0.0.1:{port}"
        watched = [Watched(f"inferq {r}", procs[r], logs_of[r]) for r in roles]
        try:
            _wait_http(f"{base}/readyz", procs["api"], "inferq api")
            _wait_worker(valkey.url, procs["worker"])
            yield Side(base, Watch(watched, valkey.url))
        finally:
            _stop(*procs.values())


def _wait_worker(url: str, worker: subprocess.Popen[bytes]) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    deadline = time.monotonic() + _START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"inferq worker exited with {worker.returncode}")
            for name in client.hkeys(keys.WORKERS):
                if client.exists(keys.heartbeat(name)):
                    return
            time.sleep(0.5)
        raise TimeoutError("inferq worker did not start")
    finally:
        client.close()
