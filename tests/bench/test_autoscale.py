"""The autoscaling bench runs every policy on a trace file and ends with its JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from autoscaler.baselines import Static
from autoscaler.simulator import ReplicaModel, simulate
from autoscaler.trace import Request, bursty, read_trace, write_trace
from tests.workers.support import ROOT

POLICIES = {
    "static_peak",
    "static_mean",
    "keda_queue_length",
    "ray_target_ongoing",
    "ours",
    "oracle",
}


def test_the_bench_replays_a_trace_file_under_every_policy(tmp_path: Path) -> None:
    trace = tmp_path / "gaps.csv"
    write_trace(trace, [r for r in bursty("gaps") if r.at < 900])
    done = subprocess.run(
        [
            sys.executable,
            "bench/autoscale.py",
            "--trace",
            str(trace),
            "--quick",
            "--startup-s",
            "15",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["bench"] == "autoscale" and report["slo"] == "queue wait <= 30 s"
    policies = report["policies"]
    assert set(policies) == POLICIES
    for row in policies.values():
        assert {
            "replica_seconds",
            "slo_attainment",
            "cost_ratio_to_oracle",
            "saving_vs_static_peak",
            "p99_queue_wait_s",
        } <= set(row)
    assert policies["oracle"]["cost_ratio_to_oracle"] == 1
    assert policies["static_peak"]["saving_vs_static_peak"] == 0
    assert policies["ours"]["slo_attainment"] > policies["static_mean"]["slo_attainment"]
    assert set(report["acceptance"]) >= {"slo_99", "within_1_15_of_oracle"}


def test_a_trace_reads_back_compressed(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:50.9951690,396,109\n2023-11-16 18:15:46.6805900,374,44\n"
    )
    first, second = read_trace(path, compression=2.0)
    assert first == Request(0.0, 374, 44)
    assert abs(second.at - 2.157) < 1e-3 and second.units(0.25, 1.0) == (396 * 0.25 + 109) / 1000
    (tmp_path / "bad.csv").write_text("TIMESTAMP,ContextTokens\n")
    try:
        read_trace(tmp_path / "bad.csv")
    except ValueError as exc:
        assert "GeneratedTokens" in str(exc)
    else:
        raise AssertionError("a trace without GeneratedTokens was read")


def test_replicas_cost_from_the_request_and_serve_after_start_up() -> None:
    model = ReplicaModel(capacity=1.0, startup_s=10.0)
    jobs = [(1.0, 0.5), (20.0, 0.5)]
    out = simulate(jobs, Static(1), model, tail_s=10.0)
    # Asked for at the first decision: the first job waits for the start-up, the second not.
    assert 9.0 <= out.waits[0] <= 10.5 and out.waits[1] <= 0.5
    assert out.replica_seconds == 30.0
    idle = simulate(jobs, Static(0), model, tail_s=10.0)
    assert idle.replica_seconds == 0 and idle.waits == [29.0, 10.0]
