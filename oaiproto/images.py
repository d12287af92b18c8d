"""Image parts of a chat request: where each one is, and the checks that need no image library.

An ``image_url`` part's ``url`` is a ``data:`` URL, the id of a file uploaded to
``/v1/files``, or an http(s) URL (fetched by the preprocess tier, when fetching is turned on
and the host is on the allowlist). Every refusal names the part in ``param``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from oaiproto.dataurl import parse_data_url
from queueing.catalogue import ModelSpec
from queueing.errors import InvalidImage, InvalidRequest
from queueing.schemas import ChatMessage, ImagePart
from queueing.settings import PreprocessSettings

FILE_ID = re.compile(r"file-[A-Za-z0-9_-]{1,100}")


@dataclass(frozen=True)
class ImageRef:
    """One image part: its source, and its place in the request (``messages.0.content.1``)."""

    part: str
    url: str

    @property
    def param(self) -> str:
        """The field that holds the source."""
        return f"{self.part}.image_url.url"


def image_refs(messages: list[ChatMessage]) -> list[ImageRef]:
    """The image parts of ``messages``, in order (the order of their placeholders)."""
    return [
        ImageRef(f"messages.{i}.content.{j}", part.image_url.url)
        for i, message in enumerate(messages)
        if isinstance(message.content, list)
        for j, part in enumerate(message.content)
        if isinstance(part, ImagePart)
    ]


def check_images(
    messages: list[ChatMessage], spec: ModelSpec, settings: PreprocessSettings
) -> list[tuple[ImageRef, str]]:
    """Refuse image parts ``spec`` cannot take, too many of them, and sources that are bad
    on their face; returns the parts that name an uploaded file, with its id (to look up)."""
    refs = image_refs(messages)
    if refs and not spec.takes_images:
        raise InvalidRequest(
            f"the model '{spec.name}' takes no images: send text only, or use a vision model",
            param=refs[0].part,
        )
    if len(refs) > settings.max_images:
        raise InvalidRequest(
            f"the request has {len(refs)} images; at most {settings.max_images} are allowed",
            param="messages",
        )
    files = []
    for ref in refs:
        file_id = check_source(ref, settings)
        if file_id is not None:
            files.append((ref, file_id))
    return files


def source_kind(url: str) -> Literal["data", "http", "file"] | None:
    """What an image source is: a data: URL, an http(s) URL, a file id; ``None``: none."""
    scheme = url.partition(":")[0].lower() if ":" in url else ""
    if scheme == "data":
        return "data"
    if scheme in ("http", "https"):
        return "http"
    return "file" if FILE_ID.fullmatch(url) else None


def check_source(ref: ImageRef, settings: PreprocessSettings) -> str | None:
    """Check one source without decoding an image; returns its file id if it names a file."""
    url = ref.url
    kind = source_kind(url)
    if kind == "data":
        parse_data_url(url, max_bytes=settings.max_bytes, formats=settings.formats, param=ref.param)
        return None
    if kind == "http":
        fetch = settings.fetch
        if not fetch.enabled:
            raise InvalidImage(
                "fetching image URLs is turned off: send the image as a data: URL or the id "
                "of a file uploaded to /v1/files",
                param=ref.param,
            )
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            host = ""
        if not fetch.allows_host(host):
            raise InvalidImage(
                f"the host {host!r} is not on the image fetch allowlist", param=ref.param
            )
        return None
    if kind == "file":
        return url
    raise InvalidImage(
        "image_url.url must be a data: URL, the id of an uploaded file (file-...), or an "
        "http(s) URL",
        param=ref.param,
    )
