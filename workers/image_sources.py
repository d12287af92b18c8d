"""Where a job's images come from: ``data:`` URLs, the tenant's uploaded files, http(s) URLs."""

from __future__ import annotations

import re

from preprocess.dataurl import parse_data_url
from queueing.errors import FileNotFound, InvalidImage
from queueing.files import Files
from queueing.settings import PreprocessSettings

FILE_ID = re.compile(r"file-[A-Za-z0-9_-]{1,100}")
FETCH_OFF = (
    "fetching image URLs is off: send the image as a data: URL or the id of a file uploaded "
    "to /v1/files"
)


class ImageSources:
    """Reads a source's bytes, or raises :class:`InvalidImage` saying why it cannot."""

    def __init__(self, settings: PreprocessSettings, files: Files | None) -> None:
        self.settings = settings
        self.files = files

    async def read(self, source: str, tenant: str) -> bytes:
        """The bytes of one image as the client sent it."""
        scheme = source.partition(":")[0].lower() if ":" in source else ""
        if scheme == "data":
            return parse_data_url(source, max_bytes=self.settings.max_bytes).data
        if scheme in ("http", "https"):
            raise InvalidImage(FETCH_OFF)
        if FILE_ID.fullmatch(source) and self.files is not None:
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
