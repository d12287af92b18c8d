"""File storage, each backend through the same tests: the local folder and a real S3 server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from queueing.errors import FileMissing
from queueing.filestore import PART_BYTES, FileStorage
from queueing.settings import Settings

MiB = 1024 * 1024


async def chunks_of(data: bytes, size: int = MiB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read(storage: FileStorage, name: str, start: int = 0) -> bytes:
    return b"".join([chunk async for chunk in storage.get(name, start)])


def leftovers(settings: Settings) -> list[str]:
    """Every file under the local folder, or every object and unfinished upload in the bucket."""
    files = settings.files
    if files.backend == "local":
        return sorted(
            str(p.relative_to(settings.files_dir()))
            for p in settings.files_dir().rglob("*")
            if p.is_file()
        )
    bucket = f"{files.s3_endpoint_url}/{files.s3_bucket}"
    listing = httpx.get(bucket).text + httpx.get(f"{bucket}?uploads").text
    return [part.split("</Key>")[0] for part in listing.split("<Key>")[1:]]


def pattern(size: int) -> bytes:
    """Bytes where every offset is distinguishable from its neighbours' (no repeats per 251)."""
    return bytes(i % 251 for i in range(size))


async def test_a_file_larger_than_a_part_comes_back_whole_and_from_any_offset(
    storage: FileStorage,
) -> None:
    data = pattern(PART_BYTES + 3 * MiB + 17)
    assert await storage.put("file-a", chunks_of(data)) == len(data)
    assert await read(storage, "file-a") == data
    for start in (1, MiB + 5, PART_BYTES, len(data) - 1):
        assert await read(storage, "file-a", start) == data[start:]
    assert await read(storage, "file-a", len(data)) == b""
    assert await read(storage, "file-a", len(data) + 10) == b""


async def test_an_empty_file_is_stored(storage: FileStorage) -> None:
    assert await storage.put("file-empty", chunks_of(b"")) == 0
    assert await read(storage, "file-empty") == b""


async def test_put_replaces_an_object(storage: FileStorage) -> None:
    await storage.put("file-a", chunks_of(b"first version"))
    await storage.put("file-a", chunks_of(b"second"))
    assert await read(storage, "file-a") == b"second"


async def test_a_missing_object_is_file_missing(storage: FileStorage) -> None:
    with pytest.raises(FileMissing):
        await read(storage, "file-nothing")
    with pytest.raises(FileMissing):
        await read(storage, "file-nothing", 5)


async def test_delete_removes_and_tolerates_absence(
    storage: FileStorage, storage_settings: Settings
) -> None:
    await storage.put("file-a", chunks_of(b"data"))
    await storage.delete("file-a")
    await storage.delete("file-a")
    with pytest.raises(FileMissing):
        await read(storage, "file-a")
    assert leftovers(storage_settings) == []


class SourceBroke(Exception):
    """The upload's source failed (a client that went away)."""


async def test_a_failing_source_leaves_nothing_and_keeps_the_old_object(
    storage: FileStorage, storage_settings: Settings
) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield pattern(PART_BYTES + MiB)  # a first part goes out before it breaks
        yield b"more"
        raise SourceBroke("gone")

    with pytest.raises(SourceBroke):
        await storage.put("file-new", broken())
    await storage.put("file-old", chunks_of(b"old content"))
    with pytest.raises(SourceBroke):
        await storage.put("file-old", broken())
    with pytest.raises(FileMissing):
        await read(storage, "file-new")
    assert await read(storage, "file-old") == b"old content"
    assert leftovers(storage_settings) == ["file-old"]


async def test_an_object_is_invisible_until_its_upload_completes(
    storage: FileStorage, storage_settings: Settings
) -> None:
    release = asyncio.Event()
    sent = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield pattern(PART_BYTES + MiB)
        sent.set()
        await release.wait()
        yield b"tail"

    upload = asyncio.create_task(storage.put("file-slow", slow()))
    await asyncio.wait_for(sent.wait(), 10)
    await asyncio.sleep(0.2)  # the first part reaches the store meanwhile
    with pytest.raises(FileMissing):
        await read(storage, "file-slow")
    staged = leftovers(storage_settings)  # a temporary file, or an open multipart upload
    assert len(staged) == 1 and staged[0].startswith("file-slow"), staged
    release.set()
    assert await upload == PART_BYTES + MiB + 4
    assert (await read(storage, "file-slow", PART_BYTES + MiB)) == b"tail"
