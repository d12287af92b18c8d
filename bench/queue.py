"""Queue bench: bare enqueue → claim → complete round trips, inferq vs arq, on one Valkey.

Run as ``.venv/bin/python bench/queue.py [--quick]``. Both sides use the same embedded Valkey
(AOF on, as in production), are flushed in between, warm up before they are timed, and run a
producer process and a consumer process each, concurrently. The last line printed is JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # bench/ heads sys.path when run as a script and would shadow the stdlib ``queue``.
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

import argparse
import json
import os
import tempfile
from dataclasses import dataclass, replace
from importlib.metadata import version
from typing import Any

import redis

from bench import queue_arq, queue_inferq
from bench.sides import Plan, Report, percentile, run_side
from bench.watch import main_or_fail
from queueing.server import EmbeddedValkey, port_is_free


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="inferq vs arq: bare queue round trips")
    p.add_argument("--quick", action="store_true", help="a smaller run of the same shape")
    p.add_argument("--n", type=int, help="timed jobs per run")
    p.add_argument("--concurrency", type=int, default=2048, help="inferq in-flight enqueues")
    p.add_argument("--arq-concurrency", type=int, default=256, help="arq in-flight enqueues")
    p.add_argument("--enqueue-batch", type=int, default=64, help="jobs per enqueue_many")
    p.add_argument("--claim-batch", type=int, default=256, help="claim max_count")
    p.add_argument("--consumers", type=int, default=2, help="concurrent claim loops (inferq)")
    p.add_argument("--max-jobs", type=int, default=10, help="arq Worker max_jobs")
    p.add_argument("--rate", type=float, default=2000.0, help="offered rate of the paced run")
    p.add_argument("--latency-s", type=float, help="length of the paced run")
    p.add_argument("--hz", type=int, help="set the server's hz (WAITAOF waits ~1/hz s)")
    return p.parse_args()


def _server_config(url: str, hz: int | None = None) -> dict[str, str]:
    """FLUSHALL (the Lua library stays), then the server's version and persistence config."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        rewrites = client.info("persistence")["aof_rewrites"]
        client.flushall()
        if hz:
            client.config_set("hz", hz)
        info: dict[str, Any] = client.info("server")
        config: dict[str, str] = client.config_get("appendonly", "appendfsync", "hz")
        version = str(info.get("valkey_version", info["redis_version"]))
        return {"valkey": version, "aof_rewrites": str(rewrites), **config}
    finally:
        client.close()


@dataclass(frozen=True)
class Run:
    """One timed run: jobs/s from the first enqueue to the last completion, and its CPU cost."""

    n: int
    producer: Report
    consumer: Report

    @property
    def elapsed(self) -> float:
        """Seconds from the first enqueue to the last completion."""
        return float(self.consumer["finished"] - self.producer["start"])

    @property
    def jobs_s(self) -> float:
        """End-to-end throughput."""
        return self.n / self.elapsed

    def cpu_us(self) -> dict[str, int]:
        """CPU microseconds per job spent by each process, and in all."""
        seconds = {
            "producer": self.producer["proc"],
            "consumer": self.consumer["proc"],
            "valkey": self.consumer["server"],
        }
        seconds["total"] = sum(seconds.values())
        return {name: round(1e6 * s / self.n) for name, s in seconds.items()}

    def describe(self) -> str:
        """Throughput, timing, and CPU microseconds per job by process."""
        cpu = ", ".join(f"{name} {us}" for name, us in self.cpu_us().items())
        return (
            f"{self.jobs_s:9,.0f} jobs/s end to end ({self.elapsed:.2f} s, all acked after "
            f"{self.producer['acked'] - self.producer['start']:.2f} s); CPU µs/job: {cpu}"
        )


def main() -> None:
    """Run both sides and print the figures; the last line is one JSON object."""
    args = _args()
    n = args.n or (4_000 if args.quick else 30_000)
    plan = Plan(
        url="",
        n=n,
        warmup=max(1_000, n // 10),
        concurrency=args.concurrency,
        enqueue_batch=args.enqueue_batch,
        claim_batch=args.claim_batch,
        consumers=args.consumers,
        max_jobs=args.max_jobs,
        rate=args.rate,
        latency_s=args.latency_s or (1.5 if args.quick else 4.0),
    )
    load = os.getloadavg()[0]
    port = next(p for p in range(16900, 17400) if port_is_free("127.0.0.1", p))
    with tempfile.TemporaryDirectory() as tmp, EmbeddedValkey(Path(tmp), port) as server:
        cfg = _server_config(server.url, args.hz)
        plan = replace(plan, url=server.url)
        limit = 50 if args.quick else 600
        iq = run_side(plan, [("p", queue_inferq.producer), ("c", queue_inferq.consumer)], limit)
        rewrites = _server_config(server.url)["aof_rewrites"]
        arq_plan = replace(plan, concurrency=args.arq_concurrency)
        aq = run_side(arq_plan, [("p", queue_arq.producer), ("c", queue_arq.consumer)], limit)
        cfg["aof_rewrites"] = (
            f"{rewrites} (inferq side), {_server_config(server.url)['aof_rewrites']} (both)"
        )
    cfg["load"] = f"{load:.2f} {os.getloadavg()[0]:.2f}"
    _print(plan, arq_plan, cfg, iq, aq)


def _print(
    plan: Plan, arq_plan: Plan, cfg: dict[str, str], iq: dict[str, Report], aq: dict[str, Report]
) -> None:
    n = plan.n
    each = Run(n, iq["p"]["each"], iq["c"]["each"])
    many = Run(n, iq["p"]["many"], iq["c"]["many"])
    arq = Run(n, aq["p"]["timed"], aq["c"]["timed"])
    lat = [x * 1000 for x in iq["c"]["latencies"]]
    paced = iq["p"]["paced"]
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    print(
        f"server: valkey {cfg['valkey']}, appendonly={cfg['appendonly']} "
        f"appendfsync={cfg['appendfsync']} hz={cfg['hz']}, AOF rewrites {cfg['aof_rewrites']} "
        "(their forked children's CPU is not in the valkey figures below); "
        "the same server and AOF config for "
        "both sides, FLUSHALL between them; per side 1 producer + 1 consumer process, "
        f"{n:,} timed jobs after a {plan.warmup:,}-job warm-up; {os.cpu_count()} CPUs, load "
        f"average {cfg['load'].replace(' ', ' → ')} (other work on the machine skews every figure)"
    )
    print(
        f"inferq producer: {plan.concurrency} concurrent JobStore.enqueue, WAITAOF 1 0 0 on "
        f"every acknowledged enqueue: {iq['p']['wait_aof']} (the API's path); consumer: "
        f"{plan.consumers} loops of claim(max_count={plan.claim_batch}) → no-op → "
        "complete_many (one round trip per batch)"
    )
    print(f"inferq:  {each.describe()}")
    print(f"inferq, producer using enqueue_many({plan.enqueue_batch}), one WAITAOF per batch:")
    print(f"         {many.describe()}")
    print(
        f"arq {version('arq')}: {arq_plan.concurrency} concurrent enqueue_job (returns before any "
        f"fsync: arq has no WAITAOF), Worker(max_jobs={arq_plan.max_jobs}, "
        f"poll_delay={queue_arq.POLL_DELAY_S}, burst=True) running a no-op"
    )
    print(f"arq:     {arq.describe()}")
    ratio, ratio_many = each.jobs_s / arq.jobs_s, many.jobs_s / arq.jobs_s
    print(f"ratio:   {ratio:.2f}x (enqueue_many: {ratio_many:.2f}x)")
    print(
        f"latency: {plan.paced:,} jobs offered at {plan.rate:g}/s, one JobStore.enqueue each: "
        f"enqueue→claim p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(lat, default=0):.2f} ms "
        f"(producer's p99 lag behind its schedule {paced['lag_p99_ms']:.2f} ms)"
    )
    print(
        f"paced enqueues acknowledged (AOF fsynced: WAITAOF 1 0 0 returned) after p50 "
        f"{paced['ack_ms'][0]:.1f} ms, p99 {paced['ack_ms'][1]:.1f} ms"
    )
    figures = {
        "bench": "queue",
        "n": n,
        "inferq_jobs_s": round(each.jobs_s),
        "arq_jobs_s": round(arq.jobs_s),
        "ratio": round(ratio, 2),
        "claim_p50_ms": round(p50, 3),
        "claim_p99_ms": round(p99, 3),
        "offered_rate": plan.rate,
        "ack_p50_ms": round(paced["ack_ms"][0], 1),
        "ack_p99_ms": round(paced["ack_ms"][1], 1),
        "inferq_enqueue_many_jobs_s": round(many.jobs_s),
        "ratio_enqueue_many": round(ratio_many, 2),
        "wait_aof": iq["p"]["wait_aof"],
        "arq_waits_fsync": False,
        "appendfsync": cfg["appendfsync"],
        "hz": int(cfg["hz"]),
        "cpu_us_per_job": {
            "inferq": each.cpu_us()["total"],
            "inferq_enqueue_many": many.cpu_us()["total"],
            "arq": arq.cpu_us()["total"],
        },
        "loadavg": [float(x) for x in cfg["load"].split()],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main_or_fail(main)
