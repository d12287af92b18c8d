"""The OpenAI Batch API on the real engine, through the official client, unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion
from openai.types.completion import Completion

from api.app import create_app
from queueing.catalogue import ModelSpec
from queueing.settings import BatchSettings, FileSettings, QueueSettings, Settings, WorkerSettings
from tests.api.support import serve
from tests.api.test_batches import ended
from tests.conftest import PARTITIONS
from tests.workers.batch.support import running_arq
from tests.workers.support import running_worker
from workers.engines.vllm import VllmEngine

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(300)
@pytest.mark.parametrize("endpoint", ["/v1/chat/completions", "/v1/completions"])
async def test_files_create_batches_create_retrieve_and_content(
    queue_url: str,
    redis_client: aioredis.Redis,
    vllm_engine: VllmEngine,
    spec: ModelSpec,
    tmp_path: Path,
    endpoint: str,
) -> None:
    settings = Settings(
        queue=QueueSettings(partitions=PARTITIONS),
        files=FileSettings(local_dir=tmp_path / "files"),
        batch=BatchSettings(poll_s=0.1),
    )
    chat = endpoint.endswith("chat/completions")
    lines = []
    for i in range(8):
        body: dict[str, object] = {"model": spec.name, "max_tokens": 12, "temperature": 0}
        if chat:
            body["messages"] = [{"role": "user", "content": f"Name a colour. ({i})"}]
        else:
            body["prompt"] = f"The number {i} is"
        lines.append({"custom_id": f"req-{i}", "method": "POST", "url": endpoint, "body": body})
    path = tmp_path / "batch.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    app = create_app(settings, queue_url)
    async with (
        running_worker(queue_url, vllm_engine, settings.queue, WorkerSettings(), spec=spec),
        running_arq(settings, queue_url),
        serve(app) as url,
        AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client,
    ):
        with path.open("rb") as handle:
            upload = await client.files.create(file=handle, purpose="batch")
        batch = await client.batches.create(
            input_file_id=upload.id,
            endpoint=endpoint,  # type: ignore[arg-type]
            completion_window="24h",
        )
        done = await ended(client, batch.id, timeout_s=240)
        assert done.status == "completed", done
        assert done.request_counts is not None and done.request_counts.completed == 8
        assert done.output_file_id is not None
        content = await client.files.content(done.output_file_id)
    rows = [json.loads(line) for line in content.text.splitlines()]
    assert sorted(row["custom_id"] for row in rows) == sorted(f"req-{i}" for i in range(8))
    for row in rows:
        assert set(row) == {"id", "custom_id", "response", "error"} and row["error"] is None
        assert row["response"]["status_code"] == 200
        shape = ChatCompletion if chat else Completion
        answer = shape.model_validate(row["response"]["body"])
        assert answer.model == spec.name and answer.usage is not None
        assert answer.usage.completion_tokens > 0
