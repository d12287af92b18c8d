"""Batch bench: inferq's batch vs vLLM's own ``run_batch``, and what a batch costs
interactive traffic, one run.

Run as ``.venv/bin/python bench/batch.py [--quick]``. One file of chat-completion lines
(the Azure LLM conversation trace's length mix, CC-BY 4.0, scaled as in the pipeline bench;
``ignore_eos``, so both sides produce the same tokens) runs (a) through inferq (api, queue,
one worker with its engine settings, arq) as a batch of the OpenAI Batch API, submitted
with the official client, and (b) through
``python -m vllm.entrypoints.openai.run_batch`` with the same engine settings, its batch step
timed without the engine's start-up. On inferq, interactive chat completions then arrive at
a steady rate alone, and again while a large batch runs (from ``--settle-s`` after it has
filled the engine); their p99 latencies, the ratio of
the two, and the batch's own token rate while they run are the interference figures. Each
side gets the machine to itself; a process that dies or a worker that stalls ends the run.
The last line printed is JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # bench/ heads sys.path when run as a script and would shadow the stdlib ``queue``.
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

import argparse
import asyncio
import json
import math
import re
import subprocess
import tempfile
import time
from typing import Any

import httpx
import redis.asyncio as aioredis
from openai import AsyncOpenAI

from bench.batch_sides import (
    MODEL,
    BatchesApi,
    batch_lines,
    output_tokens,
    paced_interactive,
    write_jsonl,
)
from bench.pipeline_engine import serve_flags
from bench.pipeline_sides import inferq_stack
from bench.sides import percentile
from bench.watch import BenchFailed, Watch, main_or_fail
from bench.workload import ATTRIBUTION, PromptMaker, Request, Scale
from queueing import keys
from queueing.catalogue import Catalogue
from queueing.server import port_is_free
from queueing.settings import Settings
from workers.engines.vllm import VllmConfig
from workers.loop import DEFAULT_UNIT_BUDGET

_TOKENS = re.compile(r"^inferq_worker_output_tokens_total\{[^}]*\} ([0-9.e+]+)$", re.M)


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="inferq batch vs vLLM run_batch; interference")
    p.add_argument("--quick", action="store_true", help="a smaller run of the same shape")
    p.add_argument("--lines", type=int, default=256, help="lines of the compared batch file")
    p.add_argument("--rate", type=float, default=1.0, help="interactive requests per second")
    p.add_argument("--seconds", type=float, default=120.0, help="each interactive phase")
    p.add_argument("--prompt-scale", type=float, default=1 / 16)
    p.add_argument("--output-scale", type=float, default=1 / 4)
    p.add_argument("--unit-budget", type=float, default=DEFAULT_UNIT_BUDGET)
    p.add_argument("--logs", type=Path, default=None, help="keep the logs in this folder")
    p.add_argument(
        "--settle-s",
        type=float,
        default=10.0,
        help="after the big batch fills the engine, wait this long before interactive traffic"
        " (0: it arrives into the batch's first prefills, the worst case)",
    )
    return p.parse_args()


def _port(start: int) -> int:
    return next(p for p in range(start, start + 500) if port_is_free("127.0.0.1", p))


def _interactive(maker: PromptMaker, n: int, salt: int) -> list[Request]:
    """Short chat requests: 32 prompt tokens, 16 out."""
    return [Request(maker.prompt(32, salt + i), 16, "interactive") for i in range(n)]


async def _worker_tokens(redis_url: str) -> float:
    """Output tokens the worker has produced so far (its Prometheus counter)."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries = await client.hgetall(keys.WORKERS)
    finally:
        await client.aclose()
    total = 0.0
    async with httpx.AsyncClient(timeout=10) as http:
        for raw in entries.values():
            if url := json.loads(raw).get("metrics_url"):
                total += sum(float(v) for v in _TOKENS.findall((await http.get(url)).text))
    return total


async def _engine_holds(redis_url: str, jobs: int) -> None:
    """Until the worker's heartbeat says it holds ``jobs`` jobs (the batch has filled it)."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        while True:
            entries = await client.hgetall(keys.WORKERS)
            if sum(json.loads(raw).get("in_flight_jobs", 0) for raw in entries.values()) >= jobs:
                return
            await asyncio.sleep(0.2)
    finally:
        await client.aclose()


def _p(latencies_s: list[float], q: float) -> float:
    return round(percentile([s * 1000 for s in latencies_s], q), 1)


async def _inferq_side(
    base: str, watch: Watch, lines: list[dict[str, Any]], big: int, maker: PromptMaker, args: Any
) -> dict[str, Any]:
    """Warm-up, interactive alone, the file as a batch, then interactive beside a big batch."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with (
        httpx.AsyncClient(base_url=base, timeout=None, limits=limits) as http,
        AsyncOpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0) as client,
    ):
        side = BatchesApi(client)
        n_paced = max(1, round(args.rate * args.seconds))
        await watch.guard(paced_interactive(http, _interactive(maker, 8, 1000), 4.0))
        await watch.guard(side.wait(await side.submit(lines[:8])))
        alone = await watch.guard(
            paced_interactive(http, _interactive(maker, n_paced, 0), args.rate)
        )
        print(f"interactive alone: p50 {_p(alone.latencies_s, 50)} ms", flush=True)

        started = time.perf_counter()
        tokens = await watch.guard(side.wait(await side.submit(lines)))
        tok_s = tokens / (time.perf_counter() - started)
        print(f"(a) inferq batch: {tokens} tokens, {tok_s:.1f} tok/s", flush=True)

        background = await side.submit(batch_lines(maker, big, args.scale, seed=23))
        await watch.guard(_engine_holds(watch.redis_url or "", 32))
        await asyncio.sleep(args.settle_s)  # past the flood of batch prefills: a running batch
        before, window_start = await _worker_tokens(watch.redis_url or ""), time.perf_counter()
        beside = await watch.guard(
            paced_interactive(http, _interactive(maker, n_paced, 5000), args.rate)
        )
        window_s = time.perf_counter() - window_start
        slowest = sorted(range(n_paced), key=lambda i: -beside.latencies_s[i])[:3]
        print(f"beside a batch: slowest requests (by send order) {slowest}", flush=True)
        batch_tokens = await _worker_tokens(watch.redis_url or "") - before - beside.tokens
        await side.cancel(background)
    return {
        "tok_s": tok_s,
        "tokens": tokens,
        "alone": alone,
        "beside": beside,
        "batch_tok_s_beside": batch_tokens / window_s,
    }


def _run_batch(config: VllmConfig, file: Path, tmp: Path) -> dict[str, Any]:
    """vLLM's run_batch on the same file and engine settings (start-up not timed)."""
    sides = Path(__file__).resolve().parent / "batch_sides.py"
    out, timing = tmp / "run_batch_out.jsonl", tmp / "run_batch_time.json"
    argv = [sys.executable, str(sides), str(timing), "-i", str(file), "-o", str(out)]
    argv += [*serve_flags(config), "--served-model-name", MODEL]
    started = time.perf_counter()
    with (tmp / "run_batch.log").open("wb") as log:
        code = subprocess.run(argv, stdout=log, stderr=log, check=False).returncode
    wall_s = time.perf_counter() - started
    if code != 0 or not timing.exists():
        raise BenchFailed(f"run_batch exited with {code} (log {tmp / 'run_batch.log'})")
    batch_s = float(json.loads(timing.read_text())["batch_s"])
    tokens, ok = output_tokens(out.read_text())
    return {"tok_s": tokens / batch_s, "tokens": tokens, "ok": ok, "wall_s": wall_s}


def main() -> None:
    """Run both sides and print the comparison."""
    args = _args()
    if args.quick:
        args.lines, args.seconds, args.rate = 64, 30.0, 1.0
    settings = Settings()
    spec = Catalogue.load(settings.models_dir, settings.catalogue).get(settings.default_model)
    config = VllmConfig(model=spec.path, max_model_len=spec.context_length)
    args.scale = Scale(prompt=args.prompt_scale, output=args.output_scale)
    maker = PromptMaker(spec.path)
    lines = batch_lines(maker, args.lines, args.scale)
    mean_out = sum(line["body"]["max_tokens"] for line in lines) / len(lines)
    print(f"{ATTRIBUTION}; prompt lengths x{args.scale.prompt:g}, output x{args.scale.output:g}")
    print(f"batch file: {len(lines)} lines, {round(mean_out * len(lines))} tokens out", flush=True)

    with tempfile.TemporaryDirectory(prefix="inferq-batch-bench-") as tmp:
        tmpdir = args.logs or Path(tmp)
        tmpdir.mkdir(parents=True, exist_ok=True)
        file = tmpdir / "batch.jsonl"
        write_jsonl(lines, file)
        print(f"logs: {tmpdir} (kept until the run ends)", flush=True)
        with inferq_stack(
            _port(18400), _port(18500), args.unit_budget, tmpdir / "valkey", tmpdir, arq=True
        ) as side:
            # Large enough to outlast the interactive phase at the full batch rate.
            big = math.ceil(200.0 * (args.seconds + args.settle_s + 30) / mean_out)
            ours = asyncio.run(_inferq_side(side.base, side.watch, lines, big, maker, args))
        theirs = _run_batch(config, file, tmpdir)
        print(f"(b) vLLM run_batch: {theirs}", flush=True)

    alone_p99, beside_p99 = _p(ours["alone"].latencies_s, 99), _p(ours["beside"].latencies_s, 99)
    result = {
        "bench": "batch",
        "inferq_batch_tok_s": round(ours["tok_s"], 1),
        "run_batch_tok_s": round(theirs["tok_s"], 1),
        "ratio_vs_run_batch": round(ours["tok_s"] / theirs["tok_s"], 3),
        "alone_p50_ms": _p(ours["alone"].latencies_s, 50),
        "alone_p99_ms": alone_p99,
        "with_batch_p50_ms": _p(ours["beside"].latencies_s, 50),
        "with_batch_p99_ms": beside_p99,
        "interference_ratio": round(beside_p99 / alone_p99, 3),
        "batch_tokens_s_with_interactive": round(ours["batch_tok_s_beside"], 1),
        "lines": len(lines),
        "tokens": {"inferq": ours["tokens"], "run_batch": theirs["tokens"]},
        "run_batch_wall_s": round(theirs["wall_s"], 1),
        "interactive": {"rate_per_s": args.rate, "seconds": args.seconds},
        "settle_s": args.settle_s,
        "batch_submission": "OpenAI Batch API (files.create, batches.create, retrieve)",
        "inferq_unit_budget": args.unit_budget,
        "batch_share_when_busy": settings.worker.batch_share_when_busy,
        "batch_preempt": settings.worker.batch_preempt,
        "batch_preempt_units": settings.worker.batch_preempt_units,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main_or_fail(main)
