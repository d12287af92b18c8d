"""File records in Redis (single server and cluster) over local file storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from queueing.connection import Client
from queueing.errors import FileMissing, FileNotFound, FileTooLarge, InvalidRequest
from queueing.files import FileObject, Files
from queueing.filestore import open_storage
from queueing.settings import FileSettings, Settings


@pytest.fixture
def files(redis_client: Client, tmp_path: Path) -> Files:
    settings = Settings(files=FileSettings(local_dir=tmp_path / "files", max_file_bytes=1000))
    return Files(redis_client, open_storage(settings), settings.files)


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def content(files: Files, file: FileObject, start: int = 0) -> bytes:
    return b"".join([chunk async for chunk in files.content(file, start)])


async def test_a_created_file_reads_back_for_its_tenant_only(files: Files) -> None:
    made = await files.create("acme", "batch", "in.jsonl", chunks_of(b'{"a": 1}\n', b'{"b": 2}\n'))
    assert made.id.startswith("file-") and made.object == "file"
    assert (made.bytes, made.filename, made.purpose, made.status) == (
        18,
        "in.jsonl",
        "batch",
        "processed",
    )
    assert await files.get("acme", made.id) == made
    assert await content(files, made) == b'{"a": 1}\n{"b": 2}\n'
    assert await content(files, made, 9) == b'{"b": 2}\n'
    with pytest.raises(FileNotFound, match=made.id):
        await files.get("other", made.id)
    with pytest.raises(FileNotFound):
        await files.get("acme", "file-unknown")
    assert await files.list("other") == ([], False)


async def test_list_pages_by_creation_time_and_purpose(files: Files) -> None:
    made = [
        await files.create("acme", purpose, f"f{i}", chunks_of(b"x"))
        for i, purpose in enumerate(["batch", "vision", "batch", "batch", "user_data"])
    ]
    ids = [file.id for file in made]
    page, more = await files.list("acme")
    assert [f.id for f in page] == ids[::-1] and not more
    page, more = await files.list("acme", order="asc", limit=2)
    assert [f.id for f in page] == ids[:2] and more
    page, more = await files.list("acme", order="asc", after=ids[1], limit=2)
    assert [f.id for f in page] == ids[2:4] and more
    page, more = await files.list("acme", order="asc", after=ids[3], limit=2)
    assert [f.id for f in page] == ids[4:] and not more
    page, more = await files.list("acme", purpose="batch", after=ids[3])
    assert [f.id for f in page] == [ids[2], ids[0]] and not more
    with pytest.raises(InvalidRequest) as raised:
        await files.list("acme", after="file-nope")
    assert raised.value.param == "after"


async def test_delete_removes_record_listing_and_content(files: Files) -> None:
    kept = await files.create("acme", "batch", "kept", chunks_of(b"keep"))
    gone = await files.create("acme", "batch", "gone", chunks_of(b"drop"))
    with pytest.raises(FileNotFound):
        await files.delete("other", gone.id)
    await files.delete("acme", gone.id)
    with pytest.raises(FileNotFound):
        await files.get("acme", gone.id)
    with pytest.raises(FileNotFound):
        await files.delete("acme", gone.id)
    with pytest.raises(FileMissing):
        await content(files, gone)
    assert (await files.list("acme", purpose="batch"))[0] == [kept]
    assert await content(files, kept) == b"keep"


async def test_a_file_over_the_limit_is_refused_and_nothing_kept(
    files: Files, tmp_path: Path
) -> None:
    with pytest.raises(FileTooLarge):
        await files.create("acme", "batch", "big", chunks_of(b"x" * 600, b"y" * 600))
    assert await files.list("acme") == ([], False)
    assert [p for p in (tmp_path / "files").rglob("*") if p.is_file()] == []
    exact = await files.create("acme", "batch", "max", chunks_of(b"z" * 1000))
    assert exact.bytes == 1000


async def test_a_given_id_is_created_then_overwritten_in_place(files: Files) -> None:
    first = await files.create("acme", "batch", "out", chunks_of(b"partial"), file_id="file-out1")
    again = await files.create(
        "acme", "batch_output", "out.jsonl", chunks_of(b"final"), file_id="file-out1"
    )
    assert first.id == again.id == "file-out1"
    assert await files.get("acme", "file-out1") == again
    assert await content(files, again) == b"final"
    assert (await files.list("acme"))[0] == [again]
    assert (await files.list("acme", purpose="batch"))[0] == []
    assert (await files.list("acme", purpose="batch_output"))[0] == [again]
    with pytest.raises(InvalidRequest):
        await files.create("acme", "batch", "x", chunks_of(b"x"), file_id="../etc/passwd")
