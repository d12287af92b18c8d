"""A request's image parts, checked before it is queued: 4xx here for what can be told
without decoding (the preprocess tier decodes, and fails the job if the image is bad)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import cast

import anyio

from oaiproto.dataurl import check_format
from oaiproto.images import check_images
from queueing.catalogue import ModelSpec
from queueing.errors import FileNotFound, InvalidImage
from queueing.files import Files
from queueing.schemas import ChatMessage
from queueing.settings import PreprocessSettings

IMAGE_PURPOSES = ("vision", "user_data")


async def check_request_images(
    messages: list[ChatMessage] | None,
    spec: ModelSpec,
    settings: PreprocessSettings,
    files: Files,
    tenant: str,
) -> None:
    """Refuse what :func:`check_images` refuses, and file ids that are not the tenant's image
    files (missing: 404; another purpose, too large, not an allowed format by signature: 400)."""
    if not any(message.images for message in messages or []):
        return
    # Off the event loop: data: URLs are base64-decoded to check their first bytes.
    named_files = await anyio.to_thread.run_sync(check_images, messages or [], spec, settings)
    for ref, file_id in named_files:
        try:
            file = await files.get(tenant, file_id)
        except FileNotFound:
            raise FileNotFound(f"No such File object: {file_id}", param=ref.param) from None
        if file.purpose not in IMAGE_PURPOSES:
            raise InvalidImage(
                f"file '{file_id}' has purpose '{file.purpose}'; an image needs "
                f"{' or '.join(repr(p) for p in IMAGE_PURPOSES)}",
                param=ref.param,
            )
        if file.bytes > settings.max_bytes:
            raise InvalidImage(
                f"file '{file_id}' is {file.bytes} bytes, over {settings.max_bytes} "
                "(the limit for one image)",
                param=ref.param,
            )
        # The storage streams with an async generator: closed once its first chunk is read.
        stream = cast(AsyncGenerator[bytes, None], files.content(file))
        async with contextlib.aclosing(stream) as chunks:
            head = await anext(chunks, b"")
        check_format(head, settings.formats, param=ref.param)
