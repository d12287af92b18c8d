"""Idle bench: how long the LLM worker's engine slots wait on images, with the preprocess tier
and with the worker decoding images itself, on the same stream of image chats.

Run as ``.venv/bin/python bench/preprocess_idle.py [--quick]``. One embedded Valkey; the real
preprocess worker (``inferq preprocess``, in ``.venv-preprocess`` when it exists); two real LLM
workers (bench/idle_worker.py: the claim loop, handler and job runner of ``inferq worker``) on
the **scripted engine at a fixed pace per token, not vLLM** (the figure is the worker's wait on
images, not the engine's speed). ``tier``: chats go to the preprocess tier, the worker reads
prepared 512 px JPEGs. ``inline``: chats go straight to the model queue with their raw images
and the worker runs ``preprocess.prepare`` (the tier's code) in a thread before the engine
starts each. Each trial submits the same stream (12 MP photo-like JPEGs and small images, one
per chat, every image's bytes unique) to each side, in turn. Last line: JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # bench/ heads sys.path when run as a script: it would shadow the ``preprocess`` package.
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import redis

from bench.idle_figures import ChatTimes, figures
from bench.preprocess_images import samples, tagged
from bench.watch import BenchFailed, Watch, Watched, main_or_fail
from inferq.preprocess_role import preprocess_python
from preprocess.cpu import usable_cpus
from queueing import keys
from queueing.calls import Enqueue, Prequeue
from queueing.catalogue import Catalogue, ModelSpec
from queueing.connection import Client, connect
from queueing.cost import estimate
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.schemas import JobRecord, JobStatus, SamplingParams
from queueing.server import EmbeddedValkey, port_is_free
from queueing.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SIDES = ("tier", "inline")
PROMPT = "<image> What is in the picture? Answer in a few words."
_START_TIMEOUT_S = 90.0
_FINISH_TIMEOUT_S = 300.0
_SUBMIT_CHUNK = 4  # chats per enqueue round trip
# One vision model per side, as the tiny VLM is priced (an image: 71 prompt tokens); nothing
# is loaded (the engine is scripted). The preprocess worker serves both; only tier's chats
# reach it.
CATALOGUE = "".join(
    f"""[models.vlm-{side}]
path = "."
context_length = 8192
prompt_weight = 0.25
output_weight = 1.0
image_tokens = 71
"""
    for side in ("tier", "inline")
)


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="LLM worker idle share waiting on images")
    p.add_argument("--quick", action="store_true", help="a smaller run of the same shape")
    p.add_argument("--chats", type=int, help="chats per side per trial")
    p.add_argument("--trials", type=int, help="trials (each side once per trial; medians)")
    p.add_argument("--slots", type=int, default=8, help="jobs the LLM worker runs at once")
    p.add_argument("--tokens", type=int, default=64, help="output tokens per chat")
    p.add_argument("--token-ms", type=float, default=20.0, help="scripted engine ms per token")
    p.add_argument("--worker-python", type=Path, help="the LLM workers' interpreter")
    p.add_argument("--tier-processes", type=int, help="the tier's pool (default: usable CPUs)")
    p.add_argument("--logs", type=Path, help="keep the processes' logs here")
    return p.parse_args()


class NoTierStore(JobStore):
    """Queues a job with images straight on its model queue, raw images and all: a deployment
    without the preprocess tier."""

    def _enqueue_call(self, record: JobRecord, idempotency_key: str | None) -> Enqueue | Prequeue:
        call = super()._enqueue_call(record.model_copy(update={"images": []}), idempotency_key)
        assert isinstance(call, Enqueue)
        fields = {**record.to_hash(), "stream": call.queue}
        return dataclasses.replace(call, fields=[item for pair in fields.items() for item in pair])


def chat(spec: ModelSpec, image: bytes, tokens: int) -> JobRecord:
    """A chat with one image (a data: URL), priced as the API prices it."""
    text_tokens = len(PROMPT.split())
    cost = estimate(
        spec, prompt_tokens=text_tokens, max_tokens=tokens, image_tokens=spec.image_tokens
    )
    media = "image/png" if image.startswith(b"\x89PNG") else "image/jpeg"
    return JobRecord(
        id=keys.new_job_id(0),
        model=spec.name,
        status=JobStatus.QUEUED,
        job_class=JobClass.STANDARD,
        estimated_units=cost.units,
        created_at=time.time(),
        tenant="local",
        band=cost.band,
        prompt_tokens=text_tokens + spec.image_tokens,
        prompt=PROMPT,
        params=SamplingParams(max_tokens=tokens),
        stream_tokens=False,
        images=[f"data:{media};base64,{base64.b64encode(image).decode()}"],
    )


def stream(large: list[bytes], small: list[bytes], chats: int, tag: str) -> list[bytes]:
    """``chats`` images: three of four a 12 MP JPEG, one a small image, each tagged unique."""
    out = []
    for i in range(chats):
        base = small[(i // 4) % len(small)] if i % 4 == 3 else large[i % len(large)]
        out.append(tagged(base, f"{tag}-{i}"))
    return out


async def run_side(
    url: str, spec: ModelSpec, images: list[bytes], tokens: int, timeline: Path, watch: Watch
) -> list[ChatTimes]:
    """Submit one chat per image to ``spec``'s side, all at once (a few per round trip); each
    chat's times once all are done."""
    client = await connect(url)
    try:
        inline = spec.name.endswith("inline")
        store = (NoTierStore if inline else JobStore)(client, Settings().queue)
        records = [chat(spec, image, tokens) for image in images]
        submitted: list[float] = []
        for at in range(0, len(records), _SUBMIT_CHUNK):  # as clients would, not in one write
            chunk = records[at : at + _SUBMIT_CHUNK]
            submitted += [time.time()] * len(chunk)
            await store.enqueue_many(chunk)
        ids = [r.id for r in records]
        await watch.guard(asyncio.wait_for(_finished(client, ids), _FINISH_TIMEOUT_S))
        text = await asyncio.to_thread(timeline.read_text)
        lines = [json.loads(line) for line in text.splitlines()]
        by_id = {line["id"]: line for line in lines}
        await client.delete(*[keys.job(i) for i in ids], *[keys.events(i) for i in ids])
    finally:
        await client.aclose()
    return [
        ChatTimes(at, tuple(by_id[i]["images"]), tuple(by_id[i]["engine"]))
        for at, i in zip(submitted, ids, strict=True)
    ]


async def _finished(client: Client, ids: list[str]) -> None:
    """Until every job has succeeded; a failed job ends the bench with its error."""
    left = set(ids)
    while left:
        await asyncio.sleep(0.05)
        async with client.pipeline(transaction=False) as pipe:
            for job_id in left:
                pipe.hmget(keys.job(job_id), "status", "error")
            replies = await pipe.execute()
        for job_id, (status, error) in zip(list(left), replies, strict=True):
            if status == JobStatus.SUCCEEDED:
                left.discard(job_id)
            elif status in (JobStatus.FAILED, JobStatus.CANCELLED):
                raise BenchFailed(f"job {job_id} {status}: {error}")


def _free_port(start: int) -> int:
    return next(p for p in range(start, start + 500) if port_is_free("127.0.0.1", p))


def _pil(python: Path) -> str:
    code = "from preprocess.pil_build import pil_build; print(pil_build().log_line())"
    done = subprocess.run(
        [str(python), "-c", code], env=_env({}), capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


@contextlib.contextmanager
def processes(
    url: str, args: argparse.Namespace, logs: Path, catalogue: Path, timelines: dict[str, Path]
) -> Iterator[Watch]:
    """The preprocess worker and one LLM worker per side, started and watched."""
    env = _env({"INFERQ_REDIS__URL": url, "INFERQ_CATALOGUE": str(catalogue)})
    if args.tier_processes:
        env["INFERQ_PREPROCESS__PROCESSES"] = str(args.tier_processes)
    pre = preprocess_python(Settings())
    argvs = {"inferq preprocess": [str(pre), "-m", "inferq", "preprocess"]}
    for side in SIDES:
        argvs[f"{side} worker"] = [
            str(args.worker_python or sys.executable),
            *["-m", "bench.idle_worker", url, f"vlm-{side}", side, str(timelines[side])],
            *["--slots", str(args.slots), "--token-ms", str(args.token_ms)],
        ]
    watched: list[Watched] = []
    try:
        for name, argv in argvs.items():
            log = logs / f"{name.replace(' ', '-')}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=out)
            watched.append(Watched(name, proc, log))
        watch = Watch(watched, url)
        _wait_workers(url, watch, len(argvs))
        yield watch
    finally:
        for item in watched:
            item.proc.terminate()
        for item in watched:
            try:
                item.proc.wait(15)
            except subprocess.TimeoutExpired:
                item.proc.kill()


def _wait_workers(url: str, watch: Watch, count: int) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    deadline = time.monotonic() + _START_TIMEOUT_S
    try:
        while (
            sum(bool(client.exists(keys.heartbeat(n))) for n in client.hkeys(keys.WORKERS)) < count
        ):
            if (problem := asyncio.run(watch.problem(None))) is not None:
                raise BenchFailed(problem)
            if time.monotonic() > deadline:
                raise BenchFailed(f"the {count} workers did not start in {_START_TIMEOUT_S:.0f} s")
            time.sleep(0.5)
    finally:
        client.close()


def _median(runs: list[dict[str, float]], figure: str) -> float:
    return round(float(statistics.median(run[figure] for run in runs)), 4)


def measure(args: argparse.Namespace, logs: Path, data: Path) -> dict[str, Any]:
    """Both sides, ``trials`` times, alternating which goes first."""
    chats = args.chats or (32 if args.quick else 64)
    trials = args.trials or (2 if args.quick else 3)
    counts = (1, 2) if args.quick else (2, 4)
    made = samples(counts[0], 0, counts[1])
    large, small = [s.data for s in made[: counts[0]]], [s.data for s in made[counts[0] :]]
    first = stream(large, small, chats, "x")
    print(
        f"{chats} chats per side per trial ({sum(len(d) for d in first) / 1e6:.0f} MB of images:"
        f" 3 in 4 a 12 MP JPEG), {trials} trials; scripted engine (not vLLM): {args.slots}"
        f" slots, {args.tokens} tokens at {args.token_ms:g} ms each",
        flush=True,
    )
    timelines = {side: data / f"{side}.jsonl" for side in SIDES}
    catalogue = data / "catalogue.toml"
    catalogue.write_text(CATALOGUE)
    specs = {side: Catalogue.load(data, catalogue).get(f"vlm-{side}") for side in SIDES}
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    load_before = os.getloadavg()
    with (
        EmbeddedValkey(data / "valkey", _free_port(16900)) as valkey,
        processes(valkey.url, args, logs, catalogue, timelines) as watch,
    ):

        def side_run(side: str, images: list[bytes]) -> list[ChatTimes]:
            got = run_side(valkey.url, specs[side], images, args.tokens, timelines[side], watch)
            return asyncio.run(got)

        for side in SIDES:  # warm up each side untimed
            side_run(side, stream(large, small, 4, f"warm-{side}"))
        for trial in range(trials):
            for side in SIDES if trial % 2 == 0 else SIDES[::-1]:
                got = figures(
                    side_run(side, stream(large, small, chats, f"{trial}-{side}")), args.slots
                )
                runs[side].append(got)
                print(
                    f"[{trial}] {side}: {got['chats_s']:.2f} chats/s, idle share"
                    f" {got['idle_share']:.3f} (engine idle {got['engine_idle_share']:.3f}),"
                    f" image step {got['image_wait_ms']:.1f} ms/chat, slots busy"
                    f" {got['busy_share']:.3f}",
                    flush=True,
                )
    tier, inline = runs["tier"], runs["inline"]
    result: dict[str, Any] = {"bench": "preprocess_idle"}
    for figure in ("idle_share", "chats_s", "engine_idle_share", "image_wait_ms", "busy_share"):
        for side in SIDES:
            result[f"{side}_{figure}"] = _median(runs[side], figure)
    result["ratio"] = round(_median(tier, "chats_s") / _median(inline, "chats_s"), 2)
    pre = preprocess_python(Settings())
    result |= {
        "engine": "scripted (fixed pace per token; not vLLM)",
        "chats": chats,
        "trials": trials,
        "slots": args.slots,
        "tier_processes": args.tier_processes or usable_cpus(),
        "tokens": args.tokens,
        "token_ms": args.token_ms,
        "mix": "3 in 4 chats a 12 MP JPEG (~1.6 MB), 1 in 4 a 640x480 JPEG or PNG",
        "tier_pil": _pil(pre),
        "worker_pil": _pil(args.worker_python or Path(sys.executable)),
        "cpus": usable_cpus(),
        "load_avg_1m_start_end": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
    }
    return result


def main() -> None:
    args = _args()
    with tempfile.TemporaryDirectory(prefix="inferq-idle-") as tmp:
        logs = args.logs or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        result = measure(args, logs, Path(tmp))
    print(json.dumps(result))


if __name__ == "__main__":
    main_or_fail(main)
