"""``inferq tenants``: create, list, show, set, rotate-key, revoke and usage against the admin
API served by uvicorn over a real server (the commands run in a thread: the server's loop is
this one)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
from typer.testing import CliRunner

from api.app import create_app
from inferq.cli import app
from queueing import keys
from queueing.catalogue import ModelSpec
from queueing.connection import connect
from queueing.server import EmbeddedValkey
from queueing.settings import FileSettings, QueueSettings, Settings
from tests.api.support import serve
from tests.api.tenancy import ADMIN_KEY, bearer, with_tenants

runner = CliRunner()


async def _inferq(*args: str) -> tuple[int, str]:
    """``inferq ARGS``: its exit status and output."""
    result = await asyncio.to_thread(runner.invoke, app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


KEY = re.compile(r"^(iq-\S+)$", re.MULTILINE)


async def test_an_operator_manages_a_tenant_from_the_command_line(
    valkey: EmbeddedValkey, queue_settings: QueueSettings, spec: ModelSpec, tmp_path: Path
) -> None:
    """The CLI speaks HTTP only: the single server is backend enough."""
    client = await connect(valkey.url)
    await client.flushall()
    await client.hset(keys.capacity(spec.name), "cpu", json.dumps({"units_per_s": 4.0}))
    await client.aclose()
    settings = Settings(queue=queue_settings, files=FileSettings(local_dir=tmp_path / "files"))
    async with (
        serve(create_app(with_tenants(settings), valkey.url)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        admin = ("--base-url", base, "--admin-key", ADMIN_KEY)
        code, out = await _inferq("tenants", "create", "acme", "--rpm", "60", *admin)
        assert code == 0, out
        assert "shown once" in out and '"requests_per_minute": 60' in out
        first = KEY.search(out)
        assert first is not None
        assert (await http.get("/v1/models", headers=bearer(first[1]))).status_code == 200

        code, out = await _inferq(
            "tenants", "set", "acme", "--weight", "3", "--reserve", f"{spec.name}=1.5", *admin
        )
        assert code == 0 and '"weight": 3.0' in out and "1.5" in out, out
        code, out = await _inferq("tenants", "set", "acme", "--reserve", f"{spec.name}=9", *admin)
        assert code == 1 and "409" in out and "exceed its capacity" in out, out
        code, out = await _inferq("tenants", "set", "acme", "--reserve", "nonsense", *admin)
        assert code == 2 and "MODEL=UNITS_PER_S" in out

        code, out = await _inferq("tenants", "rotate-key", "acme", *admin)
        second = KEY.search(out)
        assert code == 0 and second is not None and second[1] != first[1]
        assert (await http.get("/v1/models", headers=bearer(first[1]))).status_code == 401
        code, out = await _inferq("tenants", "list", *admin)
        assert code == 0 and "acme" in out and "60" in out
        code, out = await _inferq("tenants", "show", "acme", *admin)
        key_id = re.search(r"key (key_\w+)", out)
        assert code == 0 and key_id is not None and second[1] not in out
        code, out = await _inferq("tenants", "revoke", "acme", key_id[1], *admin)
        assert code == 0, out
        assert (await http.get("/v1/models", headers=bearer(second[1]))).status_code == 401

        code, out = await _inferq("tenants", "usage", "--json", *admin)
        assert code == 0 and json.loads(out)["data"] == []
        code, out = await _inferq("tenants", "show", "nobody", *admin)
        assert code == 1 and "404" in out
        code, out = await _inferq("tenants", "list", "--base-url", base, "--admin-key", "wrong")
        assert code == 1 and "403" in out
