"""Pipeline bench: vLLM offline vs vLLM's OpenAI server vs inferq end to end, one run.

Run as ``.venv/bin/python bench/pipeline.py [--quick]``. Every side runs the same engine
settings (the worker's: see ``bench/pipeline_engine.py``) on the same prompts, whose
length mix comes from the Azure LLM conversation trace (CC-BY 4.0), scaled to the model:
(a) ``LLM.generate`` offline, (b) ``vllm.entrypoints.openai.api_server`` over HTTP,
(c) inferq: HTTP submit → queue → worker → result. Then a mixed workload (90% short,
10% long, arriving together) through (b) and (c), and an open-loop run through (b) and (c):
consecutive trace requests at their own arrival times, rescaled so that the mean load is
``--open-load`` (0.7) of the capacity (a) measured, streamed (time to first token). Each
side is warmed up before it is timed and gets the machine to itself. The mixed burst is
ten times the engine's ``max_num_seqs`` by default, so that long requests can pile up in
the engine's slots.
Each side runs the throughput set ``--repeats`` times (3) and its median counts: this
machine's speed drifts by ±10% from minute to minute.
``--open-loop-only`` runs the open-loop part alone: vLLM serve, then one inferq side per
``--unit-budget`` value (``--band-edges``: inferq's cost bands; ``--capacity``: the load
target's capacity instead of an offline measurement).
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
import random
import statistics
import subprocess
import tempfile
from typing import Any

from bench.open_loop import (
    Arrival,
    drive_open,
    idle_ttft_ms,
    open_loop_set,
    peak_load,
    read_timed_trace,
)
from bench.pipeline_sides import Run, Side, drive, inferq_stack, vllm_server
from bench.sides import percentile
from bench.watch import main_or_fail
from bench.workload import ATTRIBUTION, PromptMaker, Scale, dump, mixed_set, throughput_set
from queueing.catalogue import Catalogue
from queueing.server import port_is_free
from queueing.settings import Settings
from workers.engines.vllm import VllmConfig
from workers.loop import DEFAULT_UNIT_BUDGET


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="offline vs vllm serve vs inferq, one run")
    p.add_argument("--quick", action="store_true", help="a smaller run of the same shape")
    p.add_argument("--n", type=int, default=256, help="requests in the throughput run")
    p.add_argument(
        "--mixed",
        type=int,
        default=None,
        help="requests in the mixed burst (default: ten times the engine's max_num_seqs)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="throughput runs per side; the median counts (this machine's speed drifts)",
    )
    p.add_argument(
        "--open-requests", type=int, default=400, help="trace requests in the open-loop run"
    )
    p.add_argument("--open-load", type=float, default=0.7, help="open-loop mean load over capacity")
    p.add_argument("--open-start", type=int, default=0, help="the open-loop window's first row")
    p.add_argument("--prompt-scale", type=float, default=1 / 16)
    p.add_argument("--output-scale", type=float, default=1 / 4)
    p.add_argument(
        "--unit-budget",
        type=float,
        nargs="+",
        default=[DEFAULT_UNIT_BUDGET],
        help="inferq worker's in-flight units; with --open-loop-only several: one inferq side each",
    )
    p.add_argument(
        "--open-loop-only",
        action="store_true",
        help="only the open-loop run (serve, then one inferq side per --unit-budget)",
    )
    p.add_argument(
        "--capacity",
        type=float,
        default=None,
        help="output tok/s the open-loop load is set against (default: measure offline)",
    )
    p.add_argument(
        "--band-edges",
        type=float,
        nargs="+",
        default=None,
        help="inferq's cost-band edges (units) for the model, open loop only (default: catalogue)",
    )
    args = p.parse_args()
    if len(args.unit_budget) > 1 and not args.open_loop_only:
        p.error("several --unit-budget values need --open-loop-only")
    if (args.capacity is not None or args.band_edges) and not args.open_loop_only:
        p.error("--capacity and --band-edges need --open-loop-only")
    return args


def _port(start: int) -> int:
    """A free port from a random point past ``start`` (tests and other benches on this machine
    take the first free ones from their own bases; 18200 is the test clusters')."""
    first = start + random.randrange(0, 1500)
    return next(p for p in range(first, first + 500) if port_is_free("127.0.0.1", p))


def _mixed_figures(run: Run) -> dict[str, float]:
    short = [d.latency_s * 1000 for d in run.done if d.kind == "short"]
    long = [d.latency_s * 1000 for d in run.done if d.kind == "long"]
    return {
        "short_p50_ms": round(percentile(short, 50), 1),
        "short_p99_ms": round(percentile(short, 99), 1),
        "long_p50_ms": round(percentile(long, 50), 1),
        "tok_s": round(run.tok_s, 1),
    }


def _http_side(
    side: Side, work: Any, mixed: Any, warm: Any, repeats: int, arrivals: list[Arrival]
) -> dict[str, Any]:
    """Warm up, time the throughput set ``repeats`` times, then the mixed burst, then the
    open-loop run; a process of the side that dies or steps aside ends the bench
    (``BenchFailed``)."""

    def run(requests: Any) -> Run:
        return asyncio.run(side.watch.guard(drive(side.base, requests)))

    run(warm)
    runs = [run(work).tok_s for _ in range(repeats)]
    run(warm)
    mixed_run = run(mixed)
    open_run = asyncio.run(side.watch.guard(drive_open(side.base, arrivals)))
    return {
        "tok_s": round(statistics.median(runs), 1),
        "runs": [round(r, 1) for r in runs],
        "mixed": _mixed_figures(mixed_run),
        "open_loop": open_run.figures(),
    }


def _open_side(side: Side, warm: Any, arrivals: list[Arrival]) -> dict[str, float]:
    """Warm up, time a short request alone on the idle side, then the open-loop run."""
    asyncio.run(side.watch.guard(drive(side.base, warm)))
    idle = asyncio.run(side.watch.guard(idle_ttft_ms(side.base, arrivals)))
    run = asyncio.run(side.watch.guard(drive_open(side.base, arrivals)))
    return {"idle_short_ttft_ms": idle, **run.figures()}


def _open_only(
    args: argparse.Namespace, arrivals: list[Arrival], warm: Any, config: VllmConfig, tmpdir: Path
) -> dict[str, Any]:
    """The open-loop run alone: vLLM serve, then inferq once per ``--unit-budget``."""
    env = _catalogue_env(args.band_edges, tmpdir) if args.band_edges else {}
    with vllm_server(config, _port(21000), tmpdir) as side:
        serve = _open_side(side, warm, arrivals)
    print(f"(b) vllm serve: {serve}", flush=True)
    result: dict[str, Any] = {"open_loop": {"serve": serve}, "by_unit_budget": {}}
    for budget in args.unit_budget:
        with inferq_stack(
            _port(23000), _port(25000), budget, tmpdir / f"valkey-{budget:g}", tmpdir, env=env
        ) as side:
            inferq = _open_side(side, warm, arrivals)
        print(f"(c) inferq, unit budget {budget:g}: {inferq}", flush=True)
        result["by_unit_budget"][f"{budget:g}"] = {**_open_ratios(serve, inferq), **inferq}
    first = result["by_unit_budget"][f"{args.unit_budget[0]:g}"]
    result["open_loop"]["inferq"] = first
    extra = {"band_edges": args.band_edges} if args.band_edges else {}
    return {
        **_open_ratios(serve, first),
        **result,
        "requests": {"open_loop": len(arrivals)},
        **extra,
    }


def _catalogue_env(edges: list[float], tmpdir: Path) -> dict[str, str]:
    """``INFERQ_CATALOGUE``: the default model's entry with ``edges`` as its cost bands."""
    settings = Settings()
    spec = Catalogue.load(settings.models_dir, settings.catalogue).get(settings.default_model)
    entry = spec.model_dump(include={"context_length", "prompt_weight", "output_weight"})
    lines = [f"[models.{spec.name}]", f'path = "{spec.path}"']
    lines += [f"{k} = {v}" for k, v in entry.items()]
    lines.append(f"band_edges = [{', '.join(f'{e:g}' for e in edges)}]")
    path = tmpdir / "catalogue.toml"
    path.write_text("\n".join(lines) + "\n")
    return {"INFERQ_CATALOGUE": str(path)}


def _open_set(
    maker: PromptMaker, scale: Scale, args: argparse.Namespace, capacity: float
) -> list[Arrival]:
    """The open-loop window at ``args.open_load`` of ``capacity`` (output tok/s); says how."""
    trace = read_timed_trace()
    rows = trace[args.open_start : args.open_start + args.open_requests]
    short = statistics.median(r.output for r in trace)
    arrivals, factor = open_loop_set(
        maker, rows, scale, capacity, load=args.open_load, short_output=int(short)
    )
    kinds = [a.request.kind for a in arrivals]
    print(
        f"open loop: trace rows {args.open_start}-{args.open_start + len(rows) - 1}, "
        f"arrival times x{factor:.2f} ({arrivals[-1].at_s:.0f} s), mean load "
        f"{args.open_load:g} of {capacity:.1f} tok/s, busiest 5 s "
        f"{peak_load(arrivals, capacity, 5.0):.2f}x and 30 s "
        f"{peak_load(arrivals, capacity, 30.0):.2f}x capacity; "
        f"{kinds.count('short')} short (trace output <= {short:g} tokens), "
        f"{kinds.count('long')} long",
        flush=True,
    )
    return arrivals


def _open_ratios(serve: dict[str, float], inferq: dict[str, float]) -> dict[str, float]:
    """The open-loop run's figures, inferq over vLLM serve."""
    return {
        "short_ttft_p99_ratio_vs_serve": round(
            inferq["short_ttft_p99_ms"] / serve["short_ttft_p99_ms"], 3
        ),
        "short_p99_ratio_vs_serve": round(inferq["short_p99_ms"] / serve["short_p99_ms"], 3),
        "open_loop_throughput_ratio_vs_serve": round(inferq["tok_s"] / serve["tok_s"], 3),
    }


def main() -> None:
    """Run the three sides and print the comparison."""
    args = _args()
    settings = Settings()
    spec = Catalogue.load(settings.models_dir, settings.catalogue).get(settings.default_model)
    config = VllmConfig(model=spec.path, max_model_len=spec.context_length)
    if args.quick:
        args.n, args.mixed, args.repeats, args.open_requests = 96, 300, 1, 160
    args.mixed = args.mixed or 10 * config.max_num_seqs
    scale = Scale(prompt=args.prompt_scale, output=args.output_scale)
    maker = PromptMaker(spec.path)
    work, mixed = throughput_set(maker, args.n, scale), mixed_set(maker, args.mixed, scale)
    warm = throughput_set(maker, 8, scale, seed=99)
    print(f"{ATTRIBUTION}; prompt lengths x{scale.prompt:g}, output lengths x{scale.output:g}")
    print(f"throughput run: {len(work)} requests, {sum(r.max_tokens for r in work)} tokens out")

    with tempfile.TemporaryDirectory(prefix="inferq-bench-") as tmp:
        tmpdir = Path(tmp)
        dump(work, tmpdir / "work.json")
        print(f"logs: {tmpdir} (kept until the run ends)", flush=True)
        if args.open_loop_only and args.capacity:
            arrivals = _open_set(maker, scale, args, args.capacity)
            print(json.dumps(_open_only(args, arrivals, warm, config, tmpdir)))
            return
        engine = Path(__file__).resolve().parent / "pipeline_engine.py"
        argv = [str(spec.path), str(spec.context_length), str(tmpdir / "work.json")]
        argv += [str(tmpdir / "offline.json"), str(args.repeats)]
        with (tmpdir / "offline.log").open("wb") as log:
            subprocess.run([sys.executable, str(engine), *argv], check=True, stdout=log, stderr=log)
        offline = json.loads((tmpdir / "offline.json").read_text())
        runs = ", ".join(f"{r:.1f}" for r in offline["runs"])
        print(f"(a) offline LLM.generate: {offline['tok_s']:.1f} tok/s ({runs})", flush=True)
        arrivals = _open_set(maker, scale, args, offline["tok_s"])
        if args.open_loop_only:
            print(json.dumps(_open_only(args, arrivals, warm, config, tmpdir)))
            return

        with vllm_server(config, _port(21000), tmpdir) as side:
            serve = _http_side(side, work, mixed, warm, args.repeats, arrivals)
        print(f"(b) vllm serve: {serve}", flush=True)

        with inferq_stack(
            _port(23000), _port(25000), args.unit_budget[0], tmpdir / "valkey", tmpdir
        ) as side:
            inferq = _http_side(side, work, mixed, warm, args.repeats, arrivals)
        print(f"(c) inferq: {inferq}", flush=True)

    result = {
        "offline_tok_s": round(offline["tok_s"], 1),
        "serve_tok_s": serve["tok_s"],
        "inferq_tok_s": inferq["tok_s"],
        "ratio_vs_offline": round(inferq["tok_s"] / offline["tok_s"], 3),
        "ratio_vs_serve": round(inferq["tok_s"] / serve["tok_s"], 3),
        "short_p50_ms": {
            "serve": serve["mixed"]["short_p50_ms"],
            "inferq": inferq["mixed"]["short_p50_ms"],
        },
        "short_p99_ms": {
            "serve": serve["mixed"]["short_p99_ms"],
            "inferq": inferq["mixed"]["short_p99_ms"],
        },
        "mixed_short_p99_ratio_vs_serve": round(
            inferq["mixed"]["short_p99_ms"] / serve["mixed"]["short_p99_ms"], 3
        ),
        "mixed_throughput_ratio_vs_serve": round(
            inferq["mixed"]["tok_s"] / serve["mixed"]["tok_s"], 3
        ),
        "throughput_runs": {
            "offline": [round(r, 1) for r in offline["runs"]],
            "serve": serve["runs"],
            "inferq": inferq["runs"],
        },
        "mixed": {"serve": serve["mixed"], "inferq": inferq["mixed"]},
        **_open_ratios(serve["open_loop"], inferq["open_loop"]),
        "open_loop": {"serve": serve["open_loop"], "inferq": inferq["open_loop"]},
        "requests": {"throughput": len(work), "mixed": len(mixed), "open_loop": len(arrivals)},
        "inferq_unit_budget": args.unit_budget[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main_or_fail(main)
