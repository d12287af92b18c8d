"""Pipeline bench: vLLM offline vs vLLM's OpenAI server vs inferq end to end, one run.

Run as ``.venv/bin/python bench/pipeline.py [--quick]``. Every side runs the same engine
settings (the worker's: see ``bench/pipeline_engine.py``) on the same prompts, whose
length mix comes from the Azure LLM conversation trace (CC-BY 4.0), scaled to the model:
(a) ``LLM.generate`` offline, (b) ``vllm.entrypoints.openai.api_server`` over HTTP,
(c) inferq: HTTP submit → queue → worker → result. Then a mixed workload (90% short,
10% long, arriving together) through (b) and (c). Each side is warmed up before it is
timed and gets the machine to itself. The mixed burst is ten times the engine's
``max_num_seqs`` by default, so that long requests can pile up in the engine's slots.
Each side runs the throughput set ``--repeats`` times (3) and its median counts: this
machine's speed drifts by ±10% from minute to minute.
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
import statistics
import subprocess
import tempfile
from typing import Any

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
    p.add_argument("--prompt-scale", type=float, default=1 / 16)
    p.add_argument("--output-scale", type=float, default=1 / 4)
    p.add_argument("--unit-budget", type=float, default=DEFAULT_UNIT_BUDGET)
    return p.parse_args()


def _port(start: int) -> int:
    return next(p for p in range(start, start + 500) if port_is_free("127.0.0.1", p))


def _mixed_figures(run: Run) -> dict[str, float]:
    short = [d.latency_s * 1000 for d in run.done if d.kind == "short"]
    long = [d.latency_s * 1000 for d in run.done if d.kind == "long"]
    return {
        "short_p50_ms": round(percentile(short, 50), 1),
        "short_p99_ms": round(percentile(short, 99), 1),
        "long_p50_ms": round(percentile(long, 50), 1),
        "tok_s": round(run.tok_s, 1),
    }


def _http_side(side: Side, work: Any, mixed: Any, warm: Any, repeats: int) -> dict[str, Any]:
    """Warm up, time the throughput set ``repeats`` times, then the mixed burst; a process
    of the side that dies or steps aside ends the bench (``BenchFailed``)."""

    def run(requests: Any) -> Run:
        return asyncio.run(side.watch.guard(drive(side.base, requests)))

    run(warm)
    runs = [run(work).tok_s for _ in range(repeats)]
    run(warm)
    mixed_run = run(mixed)
    return {
        "tok_s": round(statistics.median(runs), 1),
        "runs": [round(r, 1) for r in runs],
        "mixed": _mixed_figures(mixed_run),
    }


def main() -> None:
    """Run the three sides and print the comparison."""
    args = _args()
    settings = Settings()
    spec = Catalogue.load(settings.models_dir, settings.catalogue).get(settings.default_model)
    config = VllmConfig(model=spec.path, max_model_len=spec.context_length)
    if args.quick:
        args.n, args.mixed, args.repeats = 96, 300, 1
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
        engine = Path(__file__).resolve().parent / "pipeline_engine.py"
        argv = [str(spec.path), str(spec.context_length), str(tmpdir / "work.json")]
        argv += [str(tmpdir / "offline.json"), str(args.repeats)]
        with (tmpdir / "offline.log").open("wb") as log:
            subprocess.run([sys.executable, str(engine), *argv], check=True, stdout=log, stderr=log)
        offline = json.loads((tmpdir / "offline.json").read_text())
        runs = ", ".join(f"{r:.1f}" for r in offline["runs"])
        print(f"(a) offline LLM.generate: {offline['tok_s']:.1f} tok/s ({runs})", flush=True)

        with vllm_server(config, _port(18100), tmpdir) as side:
            serve = _http_side(side, work, mixed, warm, args.repeats)
        print(f"(b) vllm serve: {serve}", flush=True)

        with inferq_stack(
            _port(18200), _port(18300), args.unit_budget, tmpdir / "valkey", tmpdir
        ) as side:
            inferq = _http_side(side, work, mixed, warm, args.repeats)
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
        "short_p99_ratio_vs_serve": round(
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
        "requests": {"throughput": len(work), "mixed": len(mixed)},
        "inferq_unit_budget": args.unit_budget,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main_or_fail(main)
