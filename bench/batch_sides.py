"""The sides of the batch bench: vLLM's ``run_batch`` on a file, inferq's batch (the Batch
API), and the interactive traffic that runs alone and beside a batch.

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
from openai import AsyncOpenAI

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


def output_tokens(text: str) -> tuple[int, int]:
    """(completion tokens, lines that succeeded) of a Batch API output file's text."""
    tokens = ok = 0
    for raw in text.splitlines():
        line = json.loads(raw)
        response = line.get("response") or {}
        if line.get("error") or response.get("status_code") != 200:
            continue
        tokens += int(response["body"]["usage"]["completion_tokens"])
        ok += 1
    return tokens, ok


class BatchesApi:
    """inferq's side, as a Batch API user runs it with the official ``openai`` client:
    ``files.create`` + ``batches.create``, ``batches.retrieve`` until it ends, then the
    output file's tokens."""

    def __init__(self, client: AsyncOpenAI) -> None:
        self.client = client

    async def submit(self, lines: list[dict[str, Any]]) -> str:
        """Upload the lines and start a batch; returns its id."""
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        upload = await self.client.files.create(file=("batch.jsonl", data), purpose="batch")
        batch = await self.client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        return batch.id

    async def wait(self, batch_id: str) -> int:
        """Until the batch has ended; returns its output file's completion tokens. A batch
        that did not complete every line ends the bench."""
        while True:
            batch = await self.client.batches.retrieve(batch_id)
            if batch.status in ("completed", "failed", "expired", "cancelled"):
                break
            await asyncio.sleep(_POLL_S)
        counts = batch.request_counts
        if batch.status != "completed" or counts is None or counts.failed or not counts.total:
            raise BenchFailed(f"batch {batch_id} ended {batch.status}: {batch}")
        if batch.output_file_id is None:
            raise BenchFailed(f"batch {batch_id} completed without an output file")
        content = await self.client.files.content(batch.output_file_id)
        tokens, ok = output_tokens(content.text)
        if ok != counts.total:
            raise BenchFailed(f"batch {batch_id}: {ok} good lines of {counts.total}")
        return tokens

    async def cancel(self, batch_id: str) -> None:
        """Cancel the batch (its unfinished lines)."""
        await self.client.batches.cancel(batch_id)


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
