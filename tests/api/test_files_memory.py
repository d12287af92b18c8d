"""A 200 MB upload streams through one API process (a subprocess, so its RSS is measurable)."""

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

MB = 1000 * 1000
MiB = 1024 * 1024
UPLOAD_BYTES = 200 * MB
RSS_GROWTH_BOUND_MIB = 100  # the acceptance bound
BOUNDARY = "memory-test-boundary"
CHUNK = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def api(valkey: EmbeddedValkey, spec: ModelSpec, tmp_path: Path) -> Iterator[tuple[int, str]]:
    """``python -m api`` with its files under ``tmp_path/files``; yields its pid and URL."""
    with api_process(valkey.url, tmp_path / "api.log", {}) as proc:
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


@pytest.mark.timeout(120)
async def test_a_200_mb_upload_grows_the_api_rss_by_under_100_mib(
    api: tuple[int, str], tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    pid, base = api
    process = psutil.Process(pid)
    baseline = peak = process.memory_info().rss
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    digest = hashlib.sha256()
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        response = await client.post(
            "/v1/files", content=upload_body(digest.update), headers=headers
        )
    sampling = False
    await sampler

    assert response.status_code == 200, response.text
    made = response.json()
    assert made["bytes"] == UPLOAD_BYTES
    stored = tmp_path / "files" / made["id"]
    on_disk = hashlib.sha256()
    with stored.open("rb") as handle:
        while block := handle.read(MiB):
            on_disk.update(block)
    assert on_disk.hexdigest() == digest.hexdigest()

    growth = (peak - baseline) / MiB
    record_property("upload_mb", UPLOAD_BYTES // MB)
    record_property("api_rss_growth_mib", round(growth, 1))
    print(
        f"\n{UPLOAD_BYTES // MB} MB upload: API RSS {baseline / MiB:.1f} MiB before, "
        f"peak growth {growth:.1f} MiB"
    )
    assert growth < RSS_GROWTH_BOUND_MIB
