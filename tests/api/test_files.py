"""``/v1/files``: the official ``openai`` client over real HTTP, and the multipart edge cases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
import redis.asyncio as aioredis

from api.app import create_app
from queueing.catalogue import ModelSpec
from queueing.settings import ApiSettings, FileSettings, Settings
from tests.api.support import api_client, serve
from tests.api.test_errors import error_of
from tests.conftest import file_settings

BOUNDARY = "test-boundary-7d1f"
MiB = 1024 * 1024
LINES = b"".join(b'{"custom_id": "r%d", "method": "POST"}\n' % i for i in range(100))


def multipart(*parts: tuple[str, str | None, bytes], close: bool = True) -> bytes:
    """A multipart/form-data body of (name, filename, data) parts, in the given order."""
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += data + b"\r\n"
    return body + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


FORM = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def stored(settings: Settings) -> list[Path]:
    """The files in the local storage folder."""
    return [p for p in settings.files_dir().rglob("*") if p.is_file()]


@pytest.fixture(params=["local", "s3"])
def backend_settings(
    request: pytest.FixtureRequest, api_settings: Settings, tmp_path: Path
) -> Settings:
    """The API's settings with its files on each storage backend."""
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    files = file_settings(request.param, tmp_path, endpoint)
    return api_settings.model_copy(update={"files": files})


@pytest.fixture
async def oai(
    redis_client: aioredis.Redis, queue_url: str, backend_settings: Settings, spec: ModelSpec
) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official client, unchanged, on the API served by uvicorn."""
    async with (
        serve(create_app(backend_settings, queue_url)) as base,
        openai.AsyncOpenAI(
            base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=10
        ) as client,
    ):
        yield client


async def test_the_openai_client_uploads_lists_reads_and_deletes(
    oai: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_bytes(LINES)
    with path.open("rb") as handle:
        made = await oai.files.create(file=handle, purpose="batch")
    other = await oai.files.create(file=("pic.txt", b"not batch"), purpose="user_data")
    assert (made.bytes, made.filename, made.purpose, made.status) == (
        len(LINES),
        "requests.jsonl",
        "batch",
        "processed",
    )
    assert made.id.startswith("file-") and made.object == "file"
    assert await oai.files.retrieve(made.id) == made
    assert [f.id for f in (await oai.files.list(purpose="batch")).data] == [made.id]
    assert [f.id async for f in oai.files.list()] == [other.id, made.id]
    assert (await oai.files.content(made.id)).read() == LINES

    deleted = await oai.files.delete(made.id)
    assert (deleted.id, deleted.deleted) == (made.id, True)
    with pytest.raises(openai.NotFoundError) as missing:
        await oai.files.retrieve(made.id)
    assert missing.value.code == "file_not_found"
    with pytest.raises(openai.NotFoundError):
        await oai.files.content(made.id)
    assert (await oai.files.list(purpose="batch")).data == []
    with pytest.raises(openai.BadRequestError) as bad:
        await oai.files.create(file=("x.jsonl", LINES), purpose="fine-tune")
    assert bad.value.param == "purpose" and "fine-tune" in bad.value.message


async def test_pages_follow_after_limit_and_order(client: httpx.AsyncClient) -> None:
    ids = []
    for i in range(5):
        body = multipart(("purpose", None, b"batch"), ("file", f"f{i}.jsonl", b"{}\n"))
        ids.append((await client.post("/v1/files", content=body, headers=FORM)).json()["id"])
    page = (await client.get("/v1/files", params={"limit": 2, "order": "asc"})).json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [f["id"] for f in page["data"]] == ids[:2]
    assert (page["first_id"], page["last_id"]) == (ids[0], ids[1])
    rest = (await client.get("/v1/files", params={"after": ids[1], "order": "asc"})).json()
    assert [f["id"] for f in rest["data"]] == ids[2:] and rest["has_more"] is False
    newest = (await client.get("/v1/files", params={"limit": 1})).json()
    assert newest["data"][0]["id"] == ids[-1]
    empty = (await client.get("/v1/files", params={"purpose": "vision"})).json()
    assert empty == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    assert error_of(await client.get("/v1/files", params={"limit": 0}), 422)["param"] == "limit"


async def test_purpose_may_follow_the_file(client: httpx.AsyncClient) -> None:
    body = multipart(("file", "late.jsonl", LINES), ("purpose", None, b"batch"))
    made = (await client.post("/v1/files", content=body, headers=FORM)).json()
    assert (made["filename"], made["bytes"], made["purpose"]) == ("late.jsonl", len(LINES), "batch")
    assert (await client.get(f"/v1/files/{made['id']}/content")).content == LINES


@pytest.mark.parametrize(
    ("body", "headers", "param", "says"),
    [
        (multipart(("purpose", None, b"batch")), FORM, "file", "no 'file' part"),
        (multipart(("file", "a.jsonl", LINES)), FORM, "purpose", "no 'purpose' field"),
        (
            multipart(("file", "a.jsonl", LINES), ("purpose", None, b"fine-tune")),
            FORM,
            "purpose",
            "fine-tune",
        ),
        (
            multipart(("purpose", None, b"batch_output"), ("file", "a", LINES)),
            FORM,
            "purpose",
            "batch_output",
        ),
        (
            multipart(("purpose", None, b"batch"), ("file", "a", LINES), ("file", "b", LINES)),
            FORM,
            "file",
            "more than one 'file'",
        ),
        (
            multipart(("purpose", None, b"batch"), ("file", "a", LINES), close=False),
            FORM,
            None,
            "ended",
        ),
        (
            b"purpose=batch",
            {"content-type": "application/x-www-form-urlencoded"},
            None,
            "multipart",
        ),
        (b"not multipart at all", FORM, None, "multipart"),
    ],
)
async def test_a_bad_upload_is_400_and_stores_nothing(
    client: httpx.AsyncClient,
    api_settings: Settings,
    body: bytes,
    headers: dict[str, str],
    param: str | None,
    says: str,
) -> None:
    error = error_of(await client.post("/v1/files", content=body, headers=headers), 400)
    assert error["param"] == param and says in error["message"], error
    assert error["type"] == "invalid_request_error"
    assert stored(api_settings) == []
    assert (await client.get("/v1/files")).json()["data"] == []


async def test_another_tenants_file_is_404(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    settings = api_settings.model_copy(update={"api_keys": {"key-a": "alice", "key-b": "bob"}})
    async with api_client(settings, queue_url) as client:
        alice = {"authorization": "Bearer key-a"}
        bob = {"authorization": "Bearer key-b"}
        body = multipart(("purpose", None, b"batch"), ("file", "a.jsonl", LINES))
        made = (await client.post("/v1/files", content=body, headers=FORM | alice)).json()
        for method, path in [
            ("GET", f"/v1/files/{made['id']}"),
            ("GET", f"/v1/files/{made['id']}/content"),
            ("DELETE", f"/v1/files/{made['id']}"),
            ("GET", "/v1/files/file-unknown"),
        ]:
            error = error_of(await client.request(method, path, headers=bob), 404)
            assert error["code"] == "file_not_found" and "No such File object" in error["message"]
        assert (await client.get("/v1/files", headers=bob)).json()["data"] == []
        assert (await client.get(f"/v1/files/{made['id']}", headers=alice)).json() == made
        assert (await client.post("/v1/files", content=body, headers=FORM)).status_code == 401


async def test_uploads_have_their_own_limit_and_json_routes_keep_theirs(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    mib = MiB
    settings = api_settings.model_copy(
        update={
            "api": ApiSettings(max_body_bytes=mib),
            "files": FileSettings(local_dir=api_settings.files_dir(), max_file_bytes=3 * mib),
        }
    )
    big = bytes(range(256)) * (2 * mib // 256)  # over the JSON limit, under the file limit

    async def chunked(body: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    async with api_client(settings, queue_url) as client:
        for content in (multipart(("purpose", None, b"batch"), ("file", "big", big)),):
            made = (await client.post("/v1/files", content=content, headers=FORM)).json()
            assert made["bytes"] == len(big), made
            assert (await client.get(f"/v1/files/{made['id']}/content")).content == big
        streamed = await client.post(
            "/v1/files",
            content=chunked(multipart(("purpose", None, b"batch"), ("file", "b", big))),
            headers=FORM,
        )
        assert "content-length" not in streamed.request.headers
        assert streamed.json()["bytes"] == len(big)

        too_big = multipart(("purpose", None, b"batch"), ("file", "huge", big + big))
        for content in (too_big, chunked(too_big)):
            error = error_of(await client.post("/v1/files", content=content, headers=FORM), 413)
            assert error["code"] == "file_too_large" and str(3 * mib) in error["message"]
        assert len(stored(settings)) == 2
        assert len((await client.get("/v1/files")).json()["data"]) == 2

        json_body = {"prompt": "x" * (2 * mib)}
        error = error_of(await client.post("/v1/jobs", json=json_body), 413)
        assert error["code"] == "request_too_large"
        error = error_of(await client.post("/v1/files/file-x", json=json_body), 413)
        assert error["code"] == "request_too_large"


async def test_an_upload_cut_off_midway_leaves_nothing(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    head = (
        multipart(("purpose", None, b"batch"), close=False)
        + (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="cut"\r\n\r\n'
        ).encode()
    )
    async with serve(create_app(api_settings, queue_url)) as base:
        host, port = base.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"POST /v1/files HTTP/1.1\r\nHost: api\r\nContent-Type: {FORM['content-type']}\r\n"
            f"Content-Length: {len(head) + 100 * MiB}\r\n\r\n".encode()
            + head
        )
        async with asyncio.timeout(20):
            while not stored(api_settings):  # staged: the upload is under way
                writer.write(bytes(MiB))
                await writer.drain()
        writer.close()
        for _ in range(200):  # the server notices, aborts the upload and drops the staged file
            if not stored(api_settings):
                break
            await asyncio.sleep(0.05)
        assert stored(api_settings) == []
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/v1/files")).json()["data"] == []
