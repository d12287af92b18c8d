"""A 5,000-line batch survives SIGKILL of each process kind in turn, the queue server too.

Real processes: the embedded Valkey server (AOF), ``inferq api``, ``inferq arq`` and a worker
(the real loop with the scripted engine, logging each engine start and each completion it
recorded). Each custom_id ends up once in the result files, and no line's engine run starts
after that line's completion was recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from queueing import keys
from queueing.catalogue import ModelSpec
from queueing.connection import connect
from queueing.files import Files
from queueing.filestore import open_storage
from queueing.server import EmbeddedValkey
from queueing.settings import FileSettings, Settings
from tests.conftest import free_port
from tests.workers.batch.support import chat_line, chunked, jsonl

LINES = 5_000
ROOT = Path(__file__).resolve().parents[3]


class Stack:
    """The processes of one machine, each restartable after a kill."""

    def __init__(self, tmp_path: Path, server: EmbeddedValkey, api_port: int) -> None:
        self.tmp_path = tmp_path
        self.server = server
        self.log = tmp_path / "engine.log"
        self.env = {
            **os.environ,
            "INFERQ_REDIS__URL": server.url,
            "INFERQ_FILES__LOCAL_DIR": str(tmp_path / "files"),
            "INFERQ_QUEUE__PARTITIONS": "4",
            "INFERQ_QUEUE__LEASE_MS": "3000",
            "INFERQ_BATCH__CHUNK_LINES": "250",
            "INFERQ_BATCH__MAX_OUTSTANDING": "500",
            "INFERQ_BATCH__LEASE_MS": "3000",
            "INFERQ_BATCH__SLICE_S": "10",
            "INFERQ_BATCH__POLL_S": "0.2",
            "INFERQ_API__PORT": str(api_port),
            "INFERQ_WORKER__RENEW_EVERY_MS": "1000",
            "PYTHONPATH": str(ROOT),
        }
        self.commands = {
            "api": [sys.executable, "-m", "inferq", "api"],
            "arq": [sys.executable, "-m", "inferq", "arq"],
            "worker": [sys.executable, "-m", "tests.workers.batch.logging_worker", str(self.log)],
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.kills: list[str] = []

    def start(self, name: str) -> None:
        """Start (or restart) one process."""
        with (self.tmp_path / f"{name}.out").open("ab") as out:
            self.procs[name] = subprocess.Popen(
                self.commands[name], env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
            )

    def kill(self, name: str) -> None:
        """SIGKILL one process (or the queue server) and start it again."""
        self.kills.append(name)
        if name == "valkey":
            self.server.kill()
            self.server.start()
            return
        self.procs[name].kill()
        self.procs[name].wait(10)
        self.start(name)

    def revive(self) -> None:
        """Start again any process that exited (as ``inferq up``'s supervisor does)."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                self.start(name)

    def stop(self) -> None:
        """Stop every process."""
        for proc in self.procs.values():
            proc.kill()
            proc.wait(10)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Valkey, API, arq worker and a logging LLM worker, all of them processes."""
    server = EmbeddedValkey(tmp_path / "valkey", free_port(17600)).start()
    running = Stack(tmp_path, server, free_port(18600))
    try:
        for name in running.commands:
            running.start(name)
        yield running
    finally:
        running.stop()
        server.stop()


async def _get(http: httpx.AsyncClient, path: str) -> Any:
    """GET through restarts of the API and the queue server: retried until it answers."""
    deadline = time.monotonic() + 60
    while True:
        try:
            response = await http.get(path)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"no answer to GET {path}"
        await asyncio.sleep(0.2)


@asynccontextmanager
async def _files(stack: Stack) -> AsyncIterator[Files]:
    settings = Settings(files=FileSettings(local_dir=stack.tmp_path / "files"))
    client = await connect(stack.server.url)
    try:
        yield Files(client, open_storage(settings), settings.files)
    finally:
        await client.aclose()


async def _upload(stack: Stack, spec: ModelSpec) -> str:
    lines = [chat_line(f"line-{i}", spec.name, f"question number {i}") for i in range(LINES)]
    async with _files(stack) as files:
        file = await files.create("local", "batch", "big.jsonl", chunked(jsonl(lines)))
    return file.id


async def _read(stack: Stack, file_id: str) -> str:
    async with _files(stack) as files:
        file = await files.get("local", file_id)
        return b"".join([chunk async for chunk in files.content(file)]).decode()


@pytest.mark.timeout(400)
async def test_a_batch_survives_every_process_killed_in_turn(stack: Stack, spec: ModelSpec) -> None:
    file_id = await _upload(stack, spec)
    base = f"http://127.0.0.1:{stack.env['INFERQ_API__PORT']}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        await _get(http, "/healthz")
        body = {
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        }
        batch = (await http.post("/v1/batches", json=body)).json()
        plan = [(600, "arq"), (1_500, "worker"), (2_400, "api"), (3_300, "valkey")]
        started = time.monotonic()
        while True:
            batch = await _get(http, f"/v1/batches/{batch['id']}")
            done = batch["request_counts"]["completed"] + batch["request_counts"]["failed"]
            if plan and done >= plan[0][0]:
                stack.kill(plan.pop(0)[1])
            stack.revive()
            if batch["status"] in ("completed", "failed", "expired", "cancelled"):
                break
            assert time.monotonic() - started < 300, f"batch stuck: {batch}"
            await asyncio.sleep(0.3)
        assert stack.kills == ["arq", "worker", "api", "valkey"]
        assert batch["status"] == "completed", batch
        assert batch["request_counts"] == {"total": LINES, "completed": LINES, "failed": 0}
    output = await _read(stack, batch["output_file_id"])
    ids = Counter(json.loads(line)["custom_id"] for line in output.splitlines())
    assert len(ids) == LINES and set(ids.values()) == {1}
    events = [line.split() for line in stack.log.read_text().splitlines()]
    done_at: dict[str, int] = {}
    for position, (kind, job_id) in enumerate(events):
        if kind == "done":
            assert job_id not in done_at, f"{job_id} was recorded done twice"
            done_at[job_id] = position
    reruns = [
        job_id
        for position, (kind, job_id) in enumerate(events)
        if kind == "start" and position > done_at.get(job_id, len(events))
    ]
    assert reruns == [], f"lines ran again after they had completed: {reruns[:5]}"
    lines = {keys.line_job_id(batch["id"], n, 4) for n in range(LINES)}  # (not the probes)
    assert lines <= {job_id for kind, job_id in events if kind == "start"}
