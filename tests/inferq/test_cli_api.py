"""``inferq api`` started the way a user starts it: settings from the environment."""

from __future__ import annotations

import asyncio
import os
import sys

import httpx
import redis.asyncio as aioredis

from queueing.catalogue import ModelSpec
from tests.conftest import free_port
from tests.workers.support import ROOT


async def test_api_keys_in_the_readme_form_serve_both_tenants(
    redis_client: aioredis.Redis, queue_url: str, spec: ModelSpec
) -> None:
    port = free_port(18500)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    env = {
        **clean,
        "INFERQ_API_KEYS": "k1:alice,k2:bob",
        "INFERQ_REDIS__URL": queue_url,
        "INFERQ_API__PORT": str(port),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "inferq", "api", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(300):
                assert proc.returncode is None, "inferq api exited at start"
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            ids = {}
            for key, tenant in [("k1", "alice"), ("k2", "bob")]:
                headers = {"Authorization": f"Bearer {key}"}
                created = await http.post("/v1/jobs", json={"prompt": "hi"}, headers=headers)
                assert created.status_code == 202, created.text
                ids[tenant] = created.json()["id"]
            alice, bob = {"Authorization": "Bearer k1"}, {"Authorization": "Bearer k2"}
            assert (await http.get(f"/v1/jobs/{ids['alice']}", headers=alice)).status_code == 200
            assert (await http.get(f"/v1/jobs/{ids['alice']}", headers=bob)).status_code == 404
            assert (await http.get("/v1/models")).status_code == 401
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert b"Traceback" not in err, err.decode()
