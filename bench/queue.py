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

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
from typing import Any  # noqa: E402

import redis  # noqa: E402

from bench import queue_arq, queue_inferq  # noqa: E402
from bench.sides import Plan, Report, percentile, run_side  # noqa: E402
from queueing.server import EmbeddedValkey, port_is_free  # noqa: E402


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="a smaller run of the same shape")
    p.add_argument("--n", type=int, help="timed jobs per side")
    p.add_argument("--concurrency", type=int, default=1024, help="producer in-flight enqueues")
    p.add_argument("--batch", type=int, default=256, help="claim max_count / arq max_jobs")
    p.add_argument("--consumers", type=int, default=2, help="concurrent claim loops (inferq)")
    p.add_argument("--rate", type=float, default=2000.0, help="offered rate of the paced run")
    p.add_argument("--latency-s", type=float, help="length of the paced run")
    return p.parse_args()


def _server_config(url: str) -> dict[str, str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        client.flushall()
        info: dict[str, Any] = client.info("server")
        config: dict[str, str] = client.config_get("appendonly", "appendfsync", "hz")
        return {"valkey": str(info.get("valkey_version", info["redis_version"])), **config}
    finally:
        client.close()


def _rate(n: int, producer: Report, consumer: Report) -> tuple[float, float, float]:
    elapsed = consumer["finished"] - producer["start"]
    return n / elapsed, elapsed, producer["acked"] - producer["start"]


def main() -> None:
    """Run both sides and print the figures; the last line is one JSON object."""
    args = _args()
    n = args.n or (4_000 if args.quick else 30_000)
    plan = Plan(
        url="",
        n=n,
        warmup=max(1_000, n // 10),
        concurrency=args.concurrency,
        batch=args.batch,
        consumers=args.consumers,
        rate=args.rate,
        latency_s=args.latency_s or (1.5 if args.quick else 4.0),
    )
    port = next(p for p in range(16900, 17400) if port_is_free("127.0.0.1", p))
    with tempfile.TemporaryDirectory() as tmp, EmbeddedValkey(Path(tmp), port) as server:
        cfg = _server_config(server.url)
        side = Plan(**{**plan.__dict__, "url": server.url})
        roles = queue_inferq.producer, queue_inferq.consumer
        iq = run_side(side, [("producer", roles[0]), ("consumer", roles[1])], 300)
        _server_config(server.url)
        arq_plan = Plan(**{**side.__dict__, "rate": 0.0})
        roles = queue_arq.producer, queue_arq.consumer
        aq = run_side(arq_plan, [("producer", roles[0]), ("consumer", roles[1])], 300)
    iq_rate, iq_s, iq_ack = _rate(n, iq["producer"], iq["consumer"])
    aq_rate, aq_s, aq_ack = _rate(n, aq["producer"], aq["consumer"])
    lat = [x * 1000 for x in iq["consumer"]["latencies"]]
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    wait_aof = bool(iq["producer"]["wait_aof"])
    print(
        f"server: valkey {cfg['valkey']}, appendonly={cfg['appendonly']} "
        f"appendfsync={cfg['appendfsync']} hz={cfg['hz']}; the same server and AOF config for "
        "both sides, FLUSHALL between them; each side: 1 producer + 1 consumer process"
    )
    print(
        f"inferq: JobStore.enqueue x{n} ({plan.concurrency} concurrent, WAITAOF on every "
        f"acknowledged enqueue: {wait_aof}); claim max_count={plan.batch}, "
        f"{plan.consumers} claim loops, complete with an empty result"
    )
    print(f"inferq: {iq_rate:,.0f} jobs/s end to end ({iq_s:.2f} s; producer acked in {iq_ack:.2f} s)")
    print(
        f"arq {_arq_version()}: enqueue_job x{n} ({plan.concurrency} concurrent; arq's enqueue "
        f"does not wait for fsync), Worker(max_jobs={plan.batch}, "
        f"poll_delay={queue_arq.POLL_DELAY_S}) running a no-op"
    )
    print(f"arq:    {aq_rate:,.0f} jobs/s end to end ({aq_s:.2f} s; producer acked in {aq_ack:.2f} s)")
    print(f"ratio:  {iq_rate / aq_rate:.1f}x")
    print(
        f"latency: {plan.paced} jobs offered at {plan.rate:g}/s: enqueue→claim p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms, max {max(lat, default=0):.2f} ms "
        f"(producer p99 lag behind schedule {iq['producer']['lag_p99_ms']:.2f} ms)"
    )
    print(
        json.dumps(
            {
                "bench": "queue",
                "n": n,
                "inferq_jobs_s": round(iq_rate),
                "arq_jobs_s": round(aq_rate),
                "ratio": round(iq_rate / aq_rate, 2),
                "claim_p50_ms": round(p50, 3),
                "claim_p99_ms": round(p99, 3),
                "offered_rate": plan.rate,
                "paced_jobs": plan.paced,
                "wait_aof": wait_aof,
                "arq_waits_fsync": False,
                "appendfsync": cfg["appendfsync"],
                "hz": int(cfg["hz"]),
            }
        )
    )


def _arq_version() -> str:
    from importlib.metadata import version

    return version("arq")


if __name__ == "__main__":
    main()
