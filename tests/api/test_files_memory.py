"""A 200 MB file streams through one API process, up and down, on each storage backend (the
API is a subprocess, so its RSS is measurable)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from queueing.catalogue import ModelSpec
from queueing.server import EmbeddedValkey
from tests.api.support import api_process
from tests.conftest import file_settings

MB = 1000 * 1000
MiB = 1024 * 1024
UPLOAD_BYTES = 200 * MB
RSS_GROWTH_BOUND_MIB = 100  # the acceptance bound
BOUNDARY = "memory-test-boundary"
CHUNK = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture(params=["local", "s3"])
def api(
    request: pytest.FixtureRequest, valkey: EmbeddedValkey, spec: ModelSpec, tmp_path: Path
) -> Iterator[tuple[int, str]]:
    """``python -m api`` with its files on each backend; yields its pid and URL."""
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    files = file_settings(request.param, tmp_path, endpoint).model_dump(exclude_none=True)
    env = {
        f"INFERQ_FILES__{name.upper()}": str(value)
        if not hasattr(value, "get_secret_value")
        else value.get_secret_value()
        for name, value in files.items()
        if name != "purposes"
    }
    with api_process(valkey.url, tmp_path / "api.log", env) as proc:
        yield proc


async def upload_body(see: Callable[[bytes], None]) -> AsyncIterator[bytes]:
    """A multipart body with a ``UPLOAD_BYTES`` file, made as it is sent (``see`` sees it)."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        'filename="big.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    left = UPLOAD_BYTES
    while left:
        chunk = CHUNK[: min(left, len(CHUNK))]
        see(chunk)
        left -= len(chunk)
        yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


class PeakRss:
    """The highest RSS of a process while sampling runs."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.baseline = self.peak = self.process.memory_info().rss
        self.sampling = True

    async def run(self) -> None:
        while self.sampling:
            self.peak = max(self.peak, self.process.memory_info().rss)
            await asyncio.sleep(0.02)

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / MiB


@pytest.mark.timeout(120)
async def test_a_200_mb_file_grows_the_api_rss_by_under_100_mib(
    api: tuple[int, str], record_property: Callable[[str, object], None]
) -> None:
    pid, base = api
    rss = PeakRss(pid)
    sampler = asyncio.create_task(rss.run())
    sent, received = hashlib.sha256(), hashlib.sha256()
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        body = upload_body(sent.update)
        response = await client.post("/v1/files", content=body, headers=headers)
        upload_growth = rss.growth_mib
        assert response.status_code == 200, response.text
        made = response.json()
        assert made["bytes"] == UPLOAD_BYTES
        async with client.stream("GET", f"/v1/files/{made['id']}/content") as download:
            async for chunk in download.aiter_bytes():
                received.update(chunk)
    rss.sampling = False
    await sampler
    assert received.hexdigest() == sent.hexdigest()

    record_property("upload_mb", UPLOAD_BYTES // MB)
    record_property("api_rss_upload_growth_mib", round(upload_growth, 1))
    record_property("api_rss_growth_mib", round(rss.growth_mib, 1))
    print(
        f"\n{UPLOAD_BYTES // MB} MB file: API RSS {rss.baseline / MiB:.1f} MiB before, peak "
        f"growth {upload_growth:.1f} MiB uploading, {rss.growth_mib:.1f} MiB up and down"
    )
    assert upload_growth < RSS_GROWTH_BOUND_MIB
    assert rss.growth_mib < RSS_GROWTH_BOUND_MIB
