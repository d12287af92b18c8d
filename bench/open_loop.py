"""The pipeline bench's open-loop run: arrivals replayed from the trace's own timestamps.

A window of consecutive trace requests keeps its arrival times, rescaled so that the mean
offered load (output tokens/s) is ``load`` times the capacity measured in the same run; the
trace's bursts then overload the engine for a while. Each request is streamed, so the client
sees its time to first token (TTFT) as well as its end. Trace: Azure LLM inference trace
(conv, 2023-11-16), Azure/AzurePublicDataset, CC-BY 4.0.
"""

from __future__ import annotations

import asyncio
import csv
import json
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.sides import percentile
from bench.workload import TRACE, PromptMaker, Request, Scale

MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class Arrival:
    """A request and when it is sent, in seconds from the start of the run."""

    at_s: float
    request: Request


@dataclass(frozen=True)
class TimedRow:
    """One trace request: arrival (seconds), prompt and output tokens."""

    at_s: float
    prompt: int
    output: int


def read_timed_trace(path: Path = TRACE) -> list[TimedRow]:
    """Every trace request with its arrival time, in seconds from the trace's first one."""
    with path.open() as f:
        rows = [
            (
                datetime.fromisoformat(r["TIMESTAMP"]),
                int(r["ContextTokens"]),
                int(r["GeneratedTokens"]),
            )
            for r in csv.DictReader(f)
        ]
    start = rows[0][0]
    return [TimedRow((t - start).total_seconds(), p, o) for t, p, o in rows]


def time_factor(rows: list[TimedRow], scale: Scale, capacity_tok_s: float, load: float) -> float:
    """What the window's arrival times are multiplied by so that its mean offered load is
    ``load`` times ``capacity_tok_s`` (below 1: compressed; above 1: stretched)."""
    span = rows[-1].at_s - rows[0].at_s
    if span <= 0 or capacity_tok_s <= 0 or load <= 0:
        raise ValueError("the window needs two distinct arrival times and a positive load")
    offered = sum(scale.output_tokens(r.output) for r in rows) / span
    return offered / (load * capacity_tok_s)


def open_loop_set(
    maker: PromptMaker,
    rows: list[TimedRow],
    scale: Scale,
    capacity_tok_s: float,
    *,
    load: float = 0.7,
    short_output: int,
) -> tuple[list[Arrival], float]:
    """The window's requests at their rescaled arrival times, and the time factor. A request
    whose trace output is at most ``short_output`` tokens is "short" (the rest "long")."""
    factor = time_factor(rows, scale, capacity_tok_s, load)
    arrivals = [
        Arrival(
            (r.at_s - rows[0].at_s) * factor,
            Request(
                maker.prompt(scale.prompt_tokens(r.prompt), 1000 + i),
                scale.output_tokens(r.output),
                "short" if r.output <= short_output else "long",
            ),
        )
        for i, r in enumerate(rows)
    ]
    return arrivals, factor


def peak_load(arrivals: list[Arrival], capacity_tok_s: float, window_s: float) -> float:
    """The busiest ``window_s`` of arrivals: its output tokens per second over the capacity."""
    times = [a.at_s for a in arrivals]
    best, j, tokens = 0, 0, 0
    for i, arrival in enumerate(arrivals):
        tokens += arrival.request.max_tokens
        while times[i] - times[j] > window_s:
            tokens -= arrivals[j].request.max_tokens
            j += 1
        best = max(best, tokens)
    return best / window_s / capacity_tok_s


@dataclass(frozen=True)
class Streamed:
    """One streamed request as the client saw it, timed from its scheduled arrival."""

    kind: str
    ttft_s: float
    latency_s: float
    tokens: int


def read_chunk(line: str) -> dict[str, Any] | None:
    """The JSON of one server-sent ``data:`` line; None for ``[DONE]`` and other lines."""
    if not line.startswith("data:"):
        return None
    payload = line.removeprefix("data:").strip()
    if payload == "[DONE]":
        return None
    chunk: dict[str, Any] = json.loads(payload)
    return chunk


async def _one(http: httpx.AsyncClient, start: float, arrival: Arrival) -> Streamed:
    due = start + arrival.at_s
    await asyncio.sleep(max(0.0, due - time.perf_counter()))
    body = {
        "model": MODEL,
        "prompt": arrival.request.prompt,
        "max_tokens": arrival.request.max_tokens,
        "temperature": 0.0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    first, tokens = None, 0
    async with http.stream("POST", "/v1/completions", json=body) as reply:
        reply.raise_for_status()
        async for line in reply.aiter_lines():
            chunk = read_chunk(line)
            if chunk is None:
                continue
            if first is None and any(c.get("text") for c in chunk.get("choices") or []):
                first = time.perf_counter()
            if chunk.get("usage"):
                tokens = int(chunk["usage"]["completion_tokens"])
    end = time.perf_counter()
    return Streamed(arrival.request.kind, (first or end) - due, end - due, tokens)


@dataclass(frozen=True)
class OpenRun:
    """Every request of an open-loop run, and its span (first arrival to last answer)."""

    done: list[Streamed]
    elapsed_s: float

    def figures(self) -> dict[str, float]:
        """TTFT and latency percentiles of the short and long requests, and tokens/s."""
        out: dict[str, float] = {
            "tok_s": round(sum(d.tokens for d in self.done) / self.elapsed_s, 1)
        }
        for kind in ("short", "long"):
            ttft = [d.ttft_s * 1000 for d in self.done if d.kind == kind]
            latency = [d.latency_s * 1000 for d in self.done if d.kind == kind]
            out[f"{kind}_ttft_p50_ms"] = round(percentile(ttft, 50), 1)
            out[f"{kind}_ttft_p99_ms"] = round(percentile(ttft, 99), 1)
            out[f"{kind}_p50_ms"] = round(percentile(latency, 50), 1)
            out[f"{kind}_p99_ms"] = round(percentile(latency, 99), 1)
        out["mean_ttft_ms"] = round(statistics.fmean(d.ttft_s * 1000 for d in self.done), 1)
        return out


async def drive_open(base_url: str, arrivals: list[Arrival]) -> OpenRun:
    """Send each request at its arrival time (open loop: nobody waits for an answer)."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=base_url, timeout=None, limits=limits) as http:
        start = time.perf_counter()
        done = await asyncio.gather(*(_one(http, start, a) for a in arrivals))
        return OpenRun(list(done), time.perf_counter() - start)


async def idle_ttft_ms(base_url: str, arrivals: list[Arrival], count: int = 5) -> float:
    """The median TTFT of the window's first ``count`` short requests sent one at a time to
    the idle side: the floor a short request's TTFT has on this engine."""
    shorts = [Arrival(0.0, a.request) for a in arrivals if a.request.kind == "short"][:count]
    async with httpx.AsyncClient(base_url=base_url, timeout=None) as http:
        ttft = [(await _one(http, time.perf_counter(), a)).ttft_s * 1000 for a in shorts]
    return round(statistics.median(ttft), 1)
