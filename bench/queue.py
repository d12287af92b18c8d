"""Queue bench: bare enqueue → claim → complete round trips, inferq vs arq, on one Valkey,
and inferq alone on a 3-primary Valkey Cluster (arq speaks no Cluster).

Run as ``.venv/bin/python bench/queue.py [--quick]``. Both single-node sides use the same
embedded Valkey (AOF on, as in production), are flushed in between, warm up before they are
timed, and run a producer process and a consumer process each, concurrently; the cluster side
runs the same inferq processes against an embedded cluster whose nodes have AOF on as well.
Server CPU is INFO CPU (user + sys) summed over every node; client CPU is the producer's and
the consumer's own. The last line printed is JSON.
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

from bench import queue_arq, queue_inferq
from bench.queue_servers import node_urls, prepared
from bench.sides import Plan, Report, percentile, run_side
from bench.watch import main_or_fail
from queueing.cluster import EmbeddedCluster, range_is_free
from queueing.server import EmbeddedValkey, port_is_free

PRIMARIES = 3


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
    p.add_argument("--hz", type=int, help="set the servers' hz (WAITAOF waits ~1/hz s)")
    p.add_argument("--partitions", type=int, default=1, help="partitions on the single node")
    p.add_argument("--cluster-partitions", type=int, default=12, help="partitions on the cluster")
    p.add_argument(
        "--no-wait-aof",
        dest="wait_aof",
        action="store_false",
        help="inferq acknowledges without WAITAOF (not the API's path: shows the fsync wait)",
    )
    return p.parse_args()


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
        """CPU microseconds per job spent by each process, the clients, the server(s), all."""
        seconds = {
            "producer": self.producer["proc"],
            "consumer": self.consumer["proc"],
            "valkey": self.consumer["server"],
        }
        seconds["client"] = seconds["producer"] + seconds["consumer"]
        seconds["total"] = seconds["client"] + seconds["valkey"]
        return {name: round(1e6 * s / self.n) for name, s in seconds.items()}

    def describe(self) -> str:
        """Throughput, timing, and CPU microseconds per job by process."""
        cpu = ", ".join(f"{name} {us}" for name, us in self.cpu_us().items())
        return (
            f"{self.jobs_s:9,.0f} jobs/s end to end ({self.elapsed:.2f} s, all acked after "
            f"{self.producer['acked'] - self.producer['start']:.2f} s); CPU µs/job: {cpu}"
        )


@dataclass(frozen=True)
class Side:
    """inferq's figures on one server: both timed runs and the paced latency run."""

    each: Run
    many: Run
    latencies_ms: list[float]
    paced: Report
    wait_aof: bool

    @classmethod
    def of(cls, n: int, reports: dict[str, Report]) -> Side:
        """From the producer's and the consumer's reports."""
        p, c = reports["p"], reports["c"]
        lat = [x * 1000 for x in c["latencies"]]
        runs = Run(n, p["each"], c["each"]), Run(n, p["many"], c["many"])
        return cls(*runs, lat, p["paced"], bool(p["wait_aof"]))

    def claim_ms(self, q: float) -> float:
        """The ``q``-th percentile of enqueue → claim, ms."""
        return percentile(self.latencies_ms, q)

    def describe(self, plan: Plan) -> list[str]:
        """The side's lines of the report."""
        return [
            f"  enqueue:      {self.each.describe()}",
            f"  enqueue_many({plan.enqueue_batch}), one WAITAOF (when on) per batch and node:",
            f"                {self.many.describe()}",
            f"  latency: {plan.paced:,} jobs offered at {plan.rate:g}/s, one JobStore.enqueue "
            f"each: enqueue→claim p50 {self.claim_ms(50):.2f} ms, p99 {self.claim_ms(99):.2f} ms, "
            f"max {max(self.latencies_ms, default=0):.2f} ms (producer's p99 lag behind its "
            f"schedule {self.paced['lag_p99_ms']:.2f} ms); acknowledged after "
            f"p50 {self.paced['ack_ms'][0]:.1f} ms, p99 {self.paced['ack_ms'][1]:.1f} ms",
        ]


def main() -> None:
    """Run every side and print the figures; the last line is one JSON object."""
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
        partitions=args.partitions,
        wait_aof=args.wait_aof,
    )
    limit = 50 if args.quick else 600
    inferq_roles = [("p", queue_inferq.producer), ("c", queue_inferq.consumer)]
    load = os.getloadavg()[0]
    port = next(p for p in range(16900, 17400) if port_is_free("127.0.0.1", p))
    with tempfile.TemporaryDirectory() as tmp, EmbeddedValkey(Path(tmp), port) as server:
        cfg = prepared([server.url], args.hz)
        plan = replace(plan, url=server.url)
        iq = run_side(plan, inferq_roles, limit)
        rewrites = prepared([server.url])["aof_rewrites"]
        arq_plan = replace(plan, concurrency=args.arq_concurrency)
        aq = run_side(arq_plan, [("p", queue_arq.producer), ("c", queue_arq.consumer)], limit)
        cfg["aof_rewrites"] = f"{rewrites} (inferq side), {prepared([server.url])['aof_rewrites']}"
    base = next(p for p in range(17400, 18400, 8) if range_is_free("127.0.0.1", p, PRIMARIES))
    with tempfile.TemporaryDirectory() as tmp, EmbeddedCluster(Path(tmp), base) as cluster:
        urls = node_urls(cluster.host, cluster.ports)
        prepared(urls, args.hz)
        cluster_plan = replace(plan, url=cluster.url, partitions=args.cluster_partitions)
        cl = run_side(cluster_plan, inferq_roles, limit)
        cfg["cluster_aof_rewrites"] = prepared(urls)["aof_rewrites"]
    cfg["load"] = f"{load:.2f} {os.getloadavg()[0]:.2f}"
    single, clustered = Side.of(n, iq), Side.of(n, cl)
    arq = Run(n, aq["p"]["timed"], aq["c"]["timed"])
    _print(plan, arq_plan, cluster_plan, cfg, single, clustered, arq)


def _print(
    plan: Plan,
    arq_plan: Plan,
    cluster_plan: Plan,
    cfg: dict[str, str],
    single: Side,
    clustered: Side,
    arq: Run,
) -> None:
    n = plan.n
    print(
        f"server: valkey {cfg['valkey']}, appendonly={cfg['appendonly']} "
        f"appendfsync={cfg['appendfsync']} hz={cfg['hz']}, AOF rewrites {cfg['aof_rewrites']} "
        f"(both sides; cluster: {cfg['cluster_aof_rewrites']}; a rewrite's forked child's CPU "
        "is not in the valkey figures below); the same server and AOF config for both "
        "single-node sides, FLUSHALL between them; per side 1 producer + 1 consumer process, "
        f"{n:,} timed jobs after a {plan.warmup:,}-job warm-up; {os.cpu_count()} CPUs, load "
        f"average {cfg['load'].replace(' ', ' → ')} (other work on the machine skews every figure)"
    )
    print(
        f"inferq producer: {plan.concurrency} concurrent JobStore.enqueue (group commit), "
        f"WAITAOF 1 0 0 on every acknowledged enqueue: {single.wait_aof} (the API's path); "
        "consumer: "
        f"{plan.consumers} loops of claim(max_count={plan.claim_batch}) → no-op → "
        "complete_many (one round trip per batch and node)"
    )
    print(f"inferq, single node, {plan.partitions} partition(s):")
    print("\n".join(single.describe(plan)))
    print(
        f"arq {version('arq')}: {arq_plan.concurrency} concurrent enqueue_job (returns before any "
        f"fsync: arq has no WAITAOF), Worker(max_jobs={arq_plan.max_jobs}, "
        f"poll_delay={queue_arq.POLL_DELAY_S}, burst=True) running a no-op"
    )
    print(f"arq:            {arq.describe()}")
    ratio, ratio_many = single.each.jobs_s / arq.jobs_s, single.many.jobs_s / arq.jobs_s
    print(f"ratio:   {ratio:.2f}x (enqueue_many: {ratio_many:.2f}x)")
    print(
        f"inferq, {PRIMARIES}-primary cluster (no replicas, every node AOF everysec, WAITAOF per "
        f"node), {cluster_plan.partitions} partitions:"
    )
    print("\n".join(clustered.describe(cluster_plan)))
    print(json.dumps(_figures(plan, cluster_plan, cfg, single, clustered, arq)))


def _figures(
    plan: Plan, cluster_plan: Plan, cfg: dict[str, str], single: Side, clustered: Side, arq: Run
) -> dict[str, object]:
    cpu, arq_cpu, cl_cpu = single.each.cpu_us(), arq.cpu_us(), clustered.each.cpu_us()
    return {
        "bench": "queue",
        "n": plan.n,
        "inferq_jobs_s": round(single.each.jobs_s),
        "arq_jobs_s": round(arq.jobs_s),
        "ratio": round(single.each.jobs_s / arq.jobs_s, 2),
        "cluster_jobs_s": round(clustered.each.jobs_s),
        "server_cpu_us_per_job": cpu["valkey"],
        "client_cpu_us_per_job": cpu["client"],
        "arq_server_cpu_us_per_job": arq_cpu["valkey"],
        "arq_client_cpu_us_per_job": arq_cpu["client"],
        "cluster_server_cpu_us_per_job": cl_cpu["valkey"],
        "cluster_client_cpu_us_per_job": cl_cpu["client"],
        "claim_p50_ms": round(single.claim_ms(50), 3),
        "claim_p99_ms": round(single.claim_ms(99), 3),
        "cluster_claim_p50_ms": round(clustered.claim_ms(50), 3),
        "cluster_claim_p99_ms": round(clustered.claim_ms(99), 3),
        "offered_rate": plan.rate,
        "ack_p99_ms": round(single.paced["ack_ms"][1], 1),
        "cluster_ack_p99_ms": round(clustered.paced["ack_ms"][1], 1),
        "inferq_enqueue_many_jobs_s": round(single.many.jobs_s),
        "ratio_enqueue_many": round(single.many.jobs_s / arq.jobs_s, 2),
        "cluster_enqueue_many_jobs_s": round(clustered.many.jobs_s),
        "partitions": plan.partitions,
        "cluster_partitions": cluster_plan.partitions,
        "cluster_primaries": PRIMARIES,
        "wait_aof": single.wait_aof and clustered.wait_aof,
        "arq_waits_fsync": False,
        "appendfsync": cfg["appendfsync"],
        "hz": int(cfg["hz"]),
        "loadavg": [float(x) for x in cfg["load"].split()],
    }


if __name__ == "__main__":
    main_or_fail(main)
