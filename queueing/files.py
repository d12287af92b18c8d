"""Files: OpenAI-shaped file records in Redis, their contents in a :class:`FileStorage`.

Each tenant's records and indexes share one hash tag (``keys.file_record``/``file_index``),
so they sit in one slot of a cluster and one pipeline writes them. A record is written after
its content is complete and its index entries after the record; a delete drops the index
entries, then the record, then the content. An interrupted step therefore leaves at most a
record that is not listed yet (or no longer), or content no record points to; never a listed
file without a record, or a record without content.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Literal

from pydantic import BaseModel

from queueing import keys
from queueing.connection import Client
from queueing.errors import FileNotFound, FileTooLarge, InvalidRequest, translated
from queueing.filestore import FileStorage
from queueing.settings import FileSettings

_FILE_ID = re.compile(r"file-[A-Za-z0-9_-]{1,100}")
MAX_LIST = 10_000


class FileObject(BaseModel):
    """OpenAI's file object."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str = "processed"
    expires_at: int | None = None


def new_file_id() -> str:
    """A fresh, unguessable file id."""
    return f"file-{secrets.token_hex(12)}"


def _record(file: FileObject) -> dict[str, str]:
    return {name: str(value) for name, value in file.model_dump(exclude_none=True).items()}


def _not_found(file_id: str) -> FileNotFound:
    return FileNotFound(f"No such File object: {file_id}", param="file_id")


class Files:
    """Create, read, list and delete a tenant's files."""

    def __init__(self, client: Client, storage: FileStorage, settings: FileSettings) -> None:
        self.client = client
        self.storage = storage
        self.settings = settings

    async def create(
        self,
        tenant: str,
        purpose: str,
        filename: str,
        chunks: AsyncIterable[bytes],
        *,
        file_id: str | None = None,
    ) -> FileObject:
        """Store ``chunks`` as a new file (or replace file ``file_id``'s content and record).

        More than ``settings.max_file_bytes`` raises :class:`FileTooLarge`; nothing is kept.
        ``file_id`` names the stored object: only inferq passes one, unique across tenants.
        """
        fresh = file_id is None
        file_id, size = await self.store(chunks, file_id=file_id)
        try:
            return await self.record(tenant, file_id, purpose, filename, size)
        except BaseException:
            if fresh:  # content no record will point to (a replaced file keeps its old record)
                await self.discard(file_id)
            raise

    async def store(
        self, chunks: AsyncIterable[bytes], *, file_id: str | None = None
    ) -> tuple[str, int]:
        """The first half of :meth:`create`: the content alone (for an upload whose purpose
        arrives after its file); returns the file id and size. :meth:`record` makes it a
        file, :meth:`discard` drops it."""
        if file_id is None:
            file_id = new_file_id()
        elif not _FILE_ID.fullmatch(file_id):
            raise InvalidRequest(f"'{file_id}' is not a file id", param="file_id")
        return file_id, await self.storage.put(file_id, self._capped(chunks))

    async def discard(self, file_id: str) -> None:
        """Drop content :meth:`store` kept that will not become a file."""
        await self.storage.delete(file_id)

    async def record(
        self, tenant: str, file_id: str, purpose: str, filename: str, size: int
    ) -> FileObject:
        """Write (or replace) the record and index entries of stored content."""
        file = FileObject(
            id=file_id,
            bytes=size,
            created_at=int(time.time()),
            filename=filename,
            purpose=purpose,
        )
        record_key = keys.file_record(tenant, file_id)
        with translated("cannot record the file"):
            earlier = await self.client.hget(record_key, "purpose")
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.delete(record_key)
                pipe.hset(record_key, mapping=_record(file))
                if earlier is not None and earlier != purpose:
                    pipe.zrem(keys.file_index(tenant, earlier), file_id)
                score = time.time_ns() // 1_000  # µs: exact in a double, and ties are rare
                pipe.zadd(keys.file_index(tenant), {file_id: score})
                pipe.zadd(keys.file_index(tenant, purpose), {file_id: score})
                await pipe.execute()
        return file

    async def _capped(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        limit = self.settings.max_file_bytes
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise FileTooLarge(f"the file is larger than the limit of {limit} bytes")
            yield chunk

    async def get(self, tenant: str, file_id: str) -> FileObject:
        """The tenant's file ``file_id``; :class:`FileNotFound` for any other id."""
        with translated("cannot read the file"):
            record = await self.client.hgetall(keys.file_record(tenant, file_id))
        if not record:
            raise _not_found(file_id)
        return FileObject.model_validate(record)

    async def list(
        self,
        tenant: str,
        purpose: str | None = None,
        after: str | None = None,
        limit: int = MAX_LIST,
        order: Literal["asc", "desc"] = "desc",
    ) -> tuple[list[FileObject], bool]:
        """One page of the tenant's files by creation time, after file ``after``; and whether
        more follow."""
        index = keys.file_index(tenant, purpose)
        desc = order == "desc"
        start = 0
        with translated("cannot list files"):
            if after is not None:
                rank = await (self.client.zrevrank if desc else self.client.zrank)(index, after)
                if rank is None:
                    raise InvalidRequest(
                        f"No such File object to list after: {after}", param="after"
                    )
                start = rank + 1
            ids: list[str] = await self.client.zrange(index, start, start + limit, desc=desc)
            async with self.client.pipeline(transaction=False) as pipe:
                for file_id in ids:
                    pipe.hgetall(keys.file_record(tenant, file_id))
                records: list[dict[str, str]] = await pipe.execute() if ids else []
        found = [FileObject.model_validate(record) for record in records if record]
        return found[:limit], len(ids) > limit

    async def delete(self, tenant: str, file_id: str) -> None:
        """Delete the tenant's file (record, index entries, content)."""
        file = await self.get(tenant, file_id)
        with translated("cannot delete the file"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zrem(keys.file_index(tenant), file_id)
                pipe.zrem(keys.file_index(tenant, file.purpose), file_id)
                pipe.delete(keys.file_record(tenant, file_id))
                await pipe.execute()
        await self.storage.delete(file_id)

    def content(self, file: FileObject, start: int = 0) -> AsyncIterator[bytes]:
        """The file's bytes from offset ``start``, streamed from storage."""
        return self.storage.get(file.id, start)
