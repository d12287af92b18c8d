"""``/v1/batches`` through the official ``openai`` client: a real arq worker runs the batch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
import redis.asyncio as aioredis
from openai.types import Batch
from openai.types.chat import ChatCompletion

from api.app import create_app
from queueing.catalogue import ModelSpec
from queueing.server import EmbeddedValkey
from queueing.settings import BatchSettings, FileSettings, QueueSettings, Settings
from tests.api.support import serve
from tests.workers.batch.support import chat_line, jsonl, running_arq
from tests.workers.support import running_worker
from workers.engines.scripted import ScriptedEngine

KEYS = {"key-one": "tenant-one", "key-two": "tenant-two"}


@pytest.fixture
def batch_settings(
    queue_settings: QueueSettings, tmp_path: Path, valkey: EmbeddedValkey
) -> Settings:
    """Two tenants; files under ``tmp_path``; batches polled often; arq on the single server
    (also when the queue is a cluster, which arq cannot use)."""
    return Settings(
        queue=queue_settings,
        files=FileSettings(local_dir=tmp_path / "files"),
        batch=BatchSettings(poll_s=0.05, arq_url=valkey.url),
        api_keys=KEYS,
    )


@pytest.fixture
async def base_url(
    redis_client: aioredis.Redis, queue_url: str, batch_settings: Settings
) -> AsyncIterator[str]:
    """The API served by uvicorn."""
    async with serve(create_app(batch_settings, queue_url)) as base:
        yield f"{base}/v1"


def _client(base_url: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=10)


async def ended(oai: openai.AsyncOpenAI, batch_id: str, timeout_s: float = 60) -> Batch:
    """The batch once it has ended (polled as a client would)."""
    batch = None
    for _ in range(int(timeout_s / 0.1)):
        batch = await oai.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        await asyncio.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not end within {timeout_s} s: {batch}")


async def test_the_openai_client_runs_a_batch_end_to_end(
    base_url: str, queue_url: str, batch_settings: Settings, spec: ModelSpec
) -> None:
    lines = [chat_line(f"q{i}", spec.name, f"tell me about {i}") for i in range(12)]
    async with (
        _client(base_url, "key-one") as oai,
        running_arq(batch_settings, queue_url),
        running_worker(queue_url, ScriptedEngine(), batch_settings.queue, spec=spec),
    ):
        upload = await oai.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
        created = await oai.batches.create(
            input_file_id=upload.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"job": "nightly"},
        )
        assert (created.status, created.metadata) == ("validating", {"job": "nightly"})
        assert created.expires_at == created.created_at + 86_400
        done = await ended(oai, created.id)
        assert done.status == "completed" and done.request_counts is not None
        counts = done.request_counts
        assert (counts.total, counts.completed, counts.failed) == (12, 12, 0)
        assert done.output_file_id and done.error_file_id is None
        output = (await oai.files.content(done.output_file_id)).read()
        output_file = await oai.files.retrieve(done.output_file_id)
        listed = await oai.batches.list(limit=5)
    assert output_file.purpose == "batch_output"
    rows = [json.loads(line) for line in output.splitlines()]
    assert sorted(row["custom_id"] for row in rows) == sorted(f"q{i}" for i in range(12))
    for row in rows:
        assert row["response"]["status_code"] == 200 and row["error"] is None
        completion = ChatCompletion.model_validate(row["response"]["body"])
        assert completion.choices[0].message.content
    assert [b.id for b in listed.data] == [created.id]


async def test_bad_batch_requests_get_openai_errors(
    base_url: str, queue_url: str, batch_settings: Settings, spec: ModelSpec
) -> None:
    async with _client(base_url, "key-one") as mine, _client(base_url, "key-two") as theirs:
        upload = await mine.files.create(
            file=("in.jsonl", jsonl([chat_line("a", spec.name)])), purpose="batch"
        )
        other = await mine.files.create(file=("x.txt", b"notes"), purpose="user_data")
        good = {
            "input_file_id": upload.id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        }
        for change, status, param in [
            ({"endpoint": "/v1/embeddings"}, 400, "endpoint"),
            ({"completion_window": "48h"}, 400, "completion_window"),
            ({"input_file_id": other.id}, 400, "input_file_id"),
            ({"input_file_id": "file-missing"}, 404, "file_id"),
            ({"metadata": {str(i): "v" for i in range(17)}}, 400, "metadata"),
        ]:
            with pytest.raises(openai.APIStatusError) as refused:
                await mine.batches.create(**{**good, **change})  # type: ignore[arg-type]
            assert (refused.value.status_code, refused.value.body["param"]) == (status, param), (
                change
            )  # type: ignore[index]
        with pytest.raises(openai.NotFoundError):  # another tenant's file
            await theirs.batches.create(**good)  # type: ignore[arg-type]
        batch = await mine.batches.create(**good)  # type: ignore[arg-type]
        with pytest.raises(openai.NotFoundError) as missing:
            await theirs.batches.retrieve(batch.id)
        assert missing.value.code == "batch_not_found"
        with pytest.raises(openai.NotFoundError):
            await theirs.batches.cancel(batch.id)
        assert (await theirs.batches.list()).data == []
        cancelling = await mine.batches.cancel(batch.id)
        assert cancelling.status == "cancelling" and cancelling.cancelling_at
        async with running_arq(batch_settings, queue_url):
            cancelled = await ended(mine, batch.id)
        assert cancelled.status == "cancelled" and cancelled.cancelled_at
        with pytest.raises(openai.ConflictError):
            await mine.batches.cancel(batch.id)
