"""Where file contents live: one small interface, a local folder or an S3-compatible bucket.

Both backends are obstore's object stores (the Rust ``object_store`` crate that arrow-rs and
DataFusion use), chosen over boto3/aioboto3 because it is small, natively async (no thread
per request, no aiohttp stack), and streams an async iterable into a multipart upload with a
bounded buffer, which boto3 only does through a threaded transfer manager. The same code then
serves both backends: its local store writes to a temporary file and renames it on completion,
an S3 upload becomes visible only when its multipart upload completes, and a failed upload is
aborted, so a reader never sees a partial object. Its I/O runs on obstore's own threads, never
on the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

import obstore
from obstore.exceptions import BaseError
from obstore.store import LocalStore, ObjectStore, S3Store

from queueing.errors import FileMissing, StorageError
from queueing.settings import Settings

if TYPE_CHECKING:
    from obstore.store import S3Config

PART_BYTES = 8 * 1024 * 1024  # multipart part size (S3 wants >= 5 MiB)
PARTS_IN_FLIGHT = 3  # an upload buffers at most about PART_BYTES times this
READ_BYTES = 1024 * 1024  # the chunks a read yields


class FileStorage(Protocol):
    """Named byte objects, written whole and read as streams."""

    async def put(self, name: str, chunks: AsyncIterable[bytes]) -> int:
        """Store ``chunks`` under ``name`` (replacing any object there); returns the bytes
        written. Visible only once complete: if ``chunks`` raises, nothing is left behind."""
        ...

    def get(self, name: str, start: int = 0) -> AsyncIterator[bytes]:
        """The object's bytes from offset ``start``, in chunks; :class:`FileMissing` if absent."""
        ...

    async def delete(self, name: str) -> None:
        """Remove the object; no error if it is absent."""
        ...


@contextmanager
def _translated(name: str) -> Iterator[None]:
    """obstore's errors (and the OS's) as inferq's."""
    try:
        yield
    except FileNotFoundError as exc:
        raise FileMissing(f"the file storage holds no object '{name}'") from exc
    except (BaseError, OSError) as exc:
        raise StorageError(f"the file storage failed on '{name}': {exc}") from exc


class ObjectStorage:
    """:class:`FileStorage` over an obstore object store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    async def put(self, name: str, chunks: AsyncIterable[bytes]) -> int:
        """Stream ``chunks`` into a multipart upload; the source's own errors pass unchanged."""
        written = 0
        source_error: BaseException | None = None

        async def counted() -> AsyncIterator[bytes]:
            nonlocal written, source_error
            try:
                async for chunk in chunks:
                    written += len(chunk)
                    yield chunk
            except GeneratorExit:  # the store stopped reading: its own error follows
                raise
            except BaseException as exc:
                source_error = exc
                raise

        try:
            with _translated(name):
                await obstore.put_async(
                    self.store,
                    name,
                    counted(),
                    chunk_size=PART_BYTES,
                    max_concurrency=PARTS_IN_FLIGHT,
                )
        except (StorageError, FileMissing):  # perhaps the source's own OSError, translated
            if source_error is not None:
                raise source_error from None
            raise
        if source_error is not None:
            raise source_error
        return written

    async def get(self, name: str, start: int = 0) -> AsyncIterator[bytes]:
        """Stream the object from ``start`` (a ranged GET); nothing past its end."""
        with _translated(name):
            if start > 0:
                size = (await obstore.head_async(self.store, name))["size"]
                if start >= size:
                    return
                result = await obstore.get_async(
                    self.store, name, options={"range": {"offset": start}}
                )
            else:
                result = await obstore.get_async(self.store, name)
            async for chunk in result.stream(min_chunk_size=READ_BYTES):
                yield bytes(chunk)

    async def delete(self, name: str) -> None:
        """Delete the object if it is there."""
        try:
            with _translated(name):
                await obstore.delete_async(self.store, name)
        except FileMissing:
            pass


def open_storage(settings: Settings) -> FileStorage:
    """The backend ``settings.files`` names (the local folder is made if missing)."""
    files = settings.files
    if files.backend == "local":
        folder = settings.files_dir().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return ObjectStorage(LocalStore(folder))
    config: S3Config = {}
    if files.s3_endpoint_url:
        config["endpoint"] = files.s3_endpoint_url
    if files.s3_region:
        config["region"] = files.s3_region
    if files.s3_access_key_id:
        config["access_key_id"] = files.s3_access_key_id.get_secret_value()
    if files.s3_secret_access_key:
        config["secret_access_key"] = files.s3_secret_access_key.get_secret_value()
    plain_http = (files.s3_endpoint_url or "").startswith("http://")
    store = S3Store(files.s3_bucket, config=config, client_options={"allow_http": plain_http})
    return ObjectStorage(store)
