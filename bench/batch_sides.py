"""The sides of the batch bench: vLLM's ``run_batch`` on a file, inferq's batch, and the
interactive traffic that runs alone and beside a batch.

``python bench/batch_sides.py RESULT.json -i FILE -o OUT --model PATH ...`` runs vLLM's own
offline batch runner (``vllm.entrypoints.openai.run_batch``: its ``parse_args`` and ``main``,
unchanged) with a timer around its batch step (read the file, run every line, write the
output), so the engine's start-up is not counted, and writes the seconds to RESULT.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # bench/ heads sys.path when run as a script and would shadow the stdlib ``queue``.
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.watch import BenchFailed
from bench.workload import PromptMaker, Request, Scale, throughput_set

MODEL = "smollm2-135m-instruct"
_POLL_S = 0.2


def batch_lines(maker: PromptMaker, n: int, scale: Scale, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` Batch API lines (chat completions, the one generation URL ``run_batch`` takes)
    with the trace's length mix; ``ignore_eos`` so both sides produce the same tokens."""
    return [
        {
            "custom_id": f"line-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": chat_body(r),
        }
        for i, r in enumerate(throughput_set(maker, n, scale, seed=seed))
    ]


def chat_body(request: Request) -> dict[str, Any]:
    """A chat completion body for ``request``."""
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": request.prompt}],
        "max_tokens": request.max_tokens,
        "temperature": 0.0,
        "ignore_eos": True,
    }


def write_jsonl(lines: list[dict[str, Any]], path: Path) -> None:
    """One JSON object a line."""
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def output_tokens(path: Path) -> tuple[int, int]:
    """(completion tokens, lines that succeeded) of a Batch API output file."""
    tokens = ok = 0
    for raw in path.read_text().splitlines():
        line = json.loads(raw)
        response = line.get("response") or {}
        if line.get("error") or response.get("status_code") != 200:
            continue
        tokens += int(response["body"]["usage"]["completion_tokens"])
        ok += 1
    return tokens, ok


@dataclass
class SubmittedBatch:
    """A batch inferq runs: its jobs' ids, submitted through ``POST /v1/jobs``."""

    job_ids: list[str]


class JobsBatch:
    """inferq's side: each line becomes a ``class: batch`` job through ``POST /v1/jobs``.

    Once the Batches API is in, this is the part to swap for ``files.create`` +
    ``batches.create`` (submit), ``batches.retrieve`` (progress) and the output file (tokens).
    """

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def submit(self, lines: list[dict[str, Any]]) -> SubmittedBatch:
        """Queue every line as a batch job (a few requests at a time)."""
        sem = asyncio.Semaphore(16)

        async def one(line: dict[str, Any]) -> str:
            body = line["body"]
            job = {
                "model": body["model"],
                "messages": body["messages"],
                "params": {k: body[k] for k in ("max_tokens", "temperature", "ignore_eos")},
                "class": "batch",
                "stream_tokens": False,
                "metadata": {"custom_id": line["custom_id"]},
            }
            async with sem:
                reply = await self.http.post("/v1/jobs", json=job)
            if reply.status_code != 202:
                raise BenchFailed(f"batch job refused: {reply.status_code} {reply.text}")
            return str(reply.json()["id"])

        return SubmittedBatch(list(await asyncio.gather(*(one(line) for line in lines))))

    async def wait(self, batch: SubmittedBatch) -> int:
        """Until every job of the batch has finished; returns their completion tokens. A job
        that did not succeed ends the bench."""
        tokens = 0
        for job_id in batch.job_ids:  # in order: the later ones finish about as late
            while True:
                job = (await self.http.get(f"/v1/jobs/{job_id}")).json()
                if job["status"] not in ("queued", "running"):
                    break
                await asyncio.sleep(_POLL_S)
            if job["status"] != "succeeded":
                raise BenchFailed(f"batch job {job_id} ended {job['status']}: {job}")
            tokens += int(job["usage"]["completion_tokens"])
        return tokens

    async def cancel(self, batch: SubmittedBatch) -> None:
        """Cancel whatever of the batch has not finished."""
        for job_id in batch.job_ids:
            await self.http.delete(f"/v1/jobs/{job_id}")


@dataclass(frozen=True)
class Paced:
    """Interactive requests sent at a steady rate: latencies (s) and output tokens."""

    latencies_s: list[float]
    tokens: int


async def paced_interactive(http: httpx.AsyncClient, requests: list[Request], rate: float) -> Paced:
    """Send ``requests`` as interactive chat completions, one every ``1 / rate`` seconds
    (open loop: a slow answer does not delay the next request)."""

    async def one(request: Request, at: float) -> tuple[float, int]:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        sent = time.perf_counter()
        reply = await http.post("/v1/chat/completions", json=chat_body(request))
        if reply.status_code != 200:
            raise BenchFailed(f"interactive request failed: {reply.status_code} {reply.text}")
        return time.perf_counter() - sent, int(reply.json()["usage"]["completion_tokens"])

    start = time.perf_counter()
    done = await asyncio.gather(*(one(r, start + i / rate) for i, r in enumerate(requests)))
    return Paced([latency for latency, _ in done], sum(tokens for _, tokens in done))


def _timed_run_batch(result: Path) -> None:
    from vllm.entrypoints.launchers import run_batch as runner

    untimed = runner.run_batch
    took: list[float] = []

    async def timed(engine_client: Any, args: Any) -> None:
        started = time.perf_counter()
        await untimed(engine_client, args)
        took.append(time.perf_counter() - started)

    runner.run_batch = timed
    asyncio.run(runner.main(runner.parse_args()))
    result.write_text(json.dumps({"batch_s": took[0]}))


if __name__ == "__main__":
    _result = Path(sys.argv.pop(1))
    _timed_run_batch(_result)
