"""Where a job's images come from: ``data:`` URLs, the tenant's uploaded files, http(s) URLs."""

from __future__ import annotations

import asyncio

from oaiproto.dataurl import parse_data_url
from oaiproto.images import source_kind
from preprocess.fetch import fetch_image
from queueing.errors import FileNotFound, InvalidImage
from queueing.files import Files
from queueing.settings import PreprocessSettings


class ImageSources:
    """Reads a source's bytes, or raises :class:`InvalidImage` saying why it cannot."""

    def __init__(self, settings: PreprocessSettings, files: Files | None) -> None:
        self.settings = settings
        self.files = files

    async def read(self, source: str, tenant: str) -> bytes:
        """The bytes of one image as the client sent it."""
        kind = source_kind(source)
        if kind == "data":
            return parse_data_url(source, max_bytes=self.settings.max_bytes).data
        if kind == "http":
            return await asyncio.to_thread(fetch_image, source, self.settings.fetch)
        if kind == "file" and self.files is not None:
            return await self._file(source, tenant)
        raise InvalidImage(f"{source[:40]!r} is not a data: URL, a file id or an http(s) URL")

    async def _file(self, file_id: str, tenant: str) -> bytes:
        assert self.files is not None
        try:
            file = await self.files.get(tenant, file_id)
        except FileNotFound:
            raise InvalidImage(f"file '{file_id}' does not exist (any more)") from None
        if file.bytes > self.settings.max_bytes:
            raise InvalidImage(
                f"file '{file_id}' is {file.bytes} bytes; the limit is {self.settings.max_bytes}"
            )
        parts = [chunk async for chunk in self.files.content(file)]
        return b"".join(parts)
