"""CPU fallback at the API: a new interactive job of a model whose pool has no healthy worker
is admitted as its fallback's job and says so; other classes stay on the model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis.asyncio as aioredis

from queueing import keys
from queueing.catalogue import ModelSpec
from queueing.presence import SEEN
from queueing.settings import FallbackSettings, Settings
from tests.api.support import api_client

CHAT = {"messages": [{"role": "user", "content": "Say hi"}], "params": {"max_tokens": 16}}


def _catalogue(spec: ModelSpec, path: Path) -> Path:
    entry = f'path = "{spec.path}"\ncontext_length = 2048\nprompt_weight = 1\noutput_weight = 1\n'
    path.write_text(f'[models.big]\n{entry}fallback = "small"\n[models.small]\n{entry}')
    return path


async def test_interactive_jobs_go_to_the_fallback_and_say_so(
    redis_client: aioredis.Redis,
    queue_url: str,
    api_settings: Settings,
    spec: ModelSpec,
    tmp_path: Path,
) -> None:
    settings = api_settings.model_copy(
        update={
            "catalogue": _catalogue(spec, tmp_path / "catalogue.toml"),
            "default_model": "big",
            "fallback": FallbackSettings(grace_s=0.0),
        }
    )
    entry = {"model": "small", "health": "ok", SEEN: time.time()}  # the fallback's worker
    await redis_client.hset(keys.WORKERS, "small-1", json.dumps(entry))
    await redis_client.set(keys.heartbeat("small-1"), "1", ex=30)
    async with api_client(settings, queue_url) as client:
        created = await client.post("/v1/jobs", json={**CHAT, "class": "interactive"})
        assert created.status_code == 202, created.text
        job = created.json()
        assert (job["model"], job["fallback_from"]) == ("small", "big")
        assert (await client.get(created.headers["location"])).json()["fallback_from"] == "big"
        standard = (await client.post("/v1/jobs", json=CHAT)).json()
        assert standard["model"] == "big" and "fallback_from" not in standard
