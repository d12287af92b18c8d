"""A batch from file to result files: validation, expansion, collection, cancel and expiry."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from queueing.batch_record import BatchStatus, Stop
from queueing.catalogue import ModelSpec
from queueing.settings import QueueSettings
from tests.workers.batch.support import batch_env, chat_line, jsonl
from tests.workers.support import running_worker, wait_until
from workers.engines.scripted import ScriptedEngine


async def test_a_batch_runs_every_line_once_into_openai_shaped_files(
    queue_url: str,
    redis_client: object,
    tmp_path: Path,
    spec: ModelSpec,
    queue_settings: QueueSettings,
) -> None:
    lines = [chat_line(f"req-{i}", spec.name, f"question {i}") for i in range(40)]
    lines[7] = chat_line("req-7", spec.name, temperature=9.0)  # a bad body: an error line
    async with batch_env(
        queue_url, tmp_path, queue_settings, chunk_lines=8, max_outstanding=12
    ) as env:
        batch = await env.submit(jsonl(lines))
        async with running_worker(queue_url, ScriptedEngine(), queue_settings, spec=spec):
            await asyncio.wait_for(env.runner.advance(batch.id), 60)
        done = await env.batches.get(batch.id)
        assert done.status is BatchStatus.COMPLETED, done
        assert (done.total, done.completed, done.failed) == (40, 39, 1)
        assert done.in_progress_at and done.finalizing_at and done.completed_at
        outputs = await env.lines(done.output_file_id)
        errors = await env.lines(done.error_file_id)
    assert sorted(o["custom_id"] for o in outputs) == sorted(
        f"req-{i}" for i in range(40) if i != 7
    )
    for out in outputs:
        assert out["error"] is None and out["id"].startswith("batch_req_")
        response = out["response"]
        assert response["status_code"] == 200 and response["request_id"].startswith("job_")
        body = response["body"]
        assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
        assert body["usage"]["completion_tokens"] == 4
    assert done.output_tokens == 4 * 39
    (error,) = errors
    assert error["custom_id"] == "req-7" and error["response"]["status_code"] == 400
    assert "temperature" in error["response"]["body"]["error"]["message"]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"not json", "invalid_json_line"),
        (b"[1, 2]", "invalid_json_line"),
        (
            json.dumps(
                {
                    "custom_id": "x",
                    "method": "POST",
                    "url": "/v1/embeddings",
                    "body": {"model": "m"},
                }
            ).encode(),
            "invalid_url",
        ),
        (
            json.dumps(
                {"custom_id": "x", "method": "GET", "url": "/v1/chat/completions", "body": {}}
            ).encode(),
            "invalid_request",
        ),
        (
            json.dumps(
                {
                    "custom_id": "req-0",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": "MODEL"},
                }
            ).encode(),
            "duplicate_custom_id",
        ),
        (
            json.dumps(
                {
                    "custom_id": "y",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": "other"},
                }
            ).encode(),
            "mismatched_model",
        ),
        (b'{"custom_id": "' + b"z" * 3000 + b'"}', "line_too_long"),
    ],
)
async def test_a_malformed_file_fails_the_batch_with_line_numbers(
    queue_url: str,
    redis_client: object,
    tmp_path: Path,
    spec: ModelSpec,
    queue_settings: QueueSettings,
    line: bytes,
    code: str,
) -> None:
    good = [chat_line(f"req-{i}", spec.name) for i in range(3)]
    async with batch_env(queue_url, tmp_path, queue_settings, max_line_bytes=2048) as env:
        batch = await env.submit(
            jsonl(
                [*good, line.replace(b"MODEL", spec.name.encode()), good[0] | {"custom_id": "last"}]
            )
        )
        await asyncio.wait_for(env.runner.advance(batch.id), 30)
        failed = await env.batches.get(batch.id)
    assert failed.status is BatchStatus.FAILED and failed.failed_at
    assert failed.errors is not None
    assert [(e["code"], e["line"]) for e in failed.errors] == [(code, 4)]
    assert failed.total == 0 and failed.output_file_id is None


async def test_cancel_stops_the_rest_and_keeps_what_finished(
    queue_url: str,
    redis_client: object,
    tmp_path: Path,
    spec: ModelSpec,
    queue_settings: QueueSettings,
) -> None:
    lines = [chat_line(f"req-{i}", spec.name, max_tokens=20) for i in range(200)]
    async with batch_env(
        queue_url, tmp_path, queue_settings, chunk_lines=20, max_outstanding=40
    ) as env:
        batch = await env.submit(jsonl(lines))
        runner = asyncio.create_task(env.runner.advance(batch.id))
        async with running_worker(
            queue_url, ScriptedEngine(token_delay_s=0.01), queue_settings, spec=spec
        ):

            async def thirty_done() -> bool:
                return (await env.batches.get(batch.id)).completed >= 30

            await wait_until(thirty_done, 30, "30 lines done")
            moved, _ = await env.batches.move(
                batch.id,
                {BatchStatus.IN_PROGRESS},
                BatchStatus.CANCELLING,
                cancelling_at=1,
                stop=Stop.CANCELLED.value,
            )
            assert moved
            asked = time.monotonic()
            await asyncio.wait_for(runner, 10)
            took_s = time.monotonic() - asked
        done = await env.batches.get(batch.id)
        outputs = await env.lines(done.output_file_id)
        errors = await env.lines(done.error_file_id)
    assert done.status is BatchStatus.CANCELLED and done.cancelled_at
    assert took_s < 3, f"cancelling took {took_s:.1f} s"
    assert done.completed + done.failed == done.total == 200
    assert 30 <= done.completed < 200 and len(outputs) == done.completed
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}
    ids = [line["custom_id"] for line in outputs + errors]
    assert sorted(ids) == sorted(f"req-{i}" for i in range(200))


async def test_an_expired_batch_ends_with_its_unrun_lines_expired(
    queue_url: str,
    redis_client: object,
    tmp_path: Path,
    spec: ModelSpec,
    queue_settings: QueueSettings,
) -> None:
    lines = [chat_line(f"req-{i}", spec.name) for i in range(20)]
    async with batch_env(queue_url, tmp_path, queue_settings, chunk_lines=8) as env:
        batch = await env.submit(jsonl(lines))
        await env.runner.step(await env.batches.get(batch.id))  # validates
        await env.runner.step(await env.batches.get(batch.id))  # queues 8 lines
        assert (await env.batches.get(batch.id)).expanded == 8
        await env.batches.update(batch.id, expires_at=0)  # no worker runs: nothing finished
        await asyncio.wait_for(env.runner.advance(batch.id), 30)
        done = await env.batches.get(batch.id)
        errors = await env.lines(done.error_file_id)
    assert done.status is BatchStatus.EXPIRED and done.expired_at
    assert (done.completed, done.failed) == (0, 20) and done.output_file_id is None
    assert sorted(e["custom_id"] for e in errors) == sorted(f"req-{i}" for i in range(20))
    assert {e["error"]["code"] for e in errors} == {"batch_expired"}
