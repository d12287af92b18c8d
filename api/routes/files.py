"""``/v1/files``: OpenAI's Files API. Uploads stream from the request body into storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import FilesDep, SettingsDep, TenantDep
from api.multipart import MultipartReader
from oaiproto.files import FileDeleted, FileList
from queueing.errors import FileTooLarge, InvalidRequest
from queueing.files import MAX_LIST, FileObject, Files

router = APIRouter(prefix="/v1/files", tags=["files"])

# The upload route reads its body as a stream, with its own limit (files.max_file_bytes):
# the app's whole-body guard lets it through.
UPLOAD = ("POST", "/v1/files")
MULTIPART_SLACK = 64 * 1024  # boundaries, part headers and small fields around the file
MAX_FIELD_BYTES = 1024

FileId = Annotated[str, Path(min_length=1, max_length=128, description="The file's id")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text}
    for code, text in {
        400: "Invalid request (e.g. an unsupported purpose, no file part)",
        401: "Missing or unknown API key",
        404: "No such file",
        413: "File larger than the limit",
    }.items()
}
_MULTIPART_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {
                            "type": "string",
                            "description": "batch, vision or user_data (INFERQ_FILES__PURPOSES)",
                        },
                    },
                }
            }
        },
    }
}


def _check_purpose(purpose: str, accepted: tuple[str, ...]) -> str:
    if purpose not in accepted:
        raise InvalidRequest(
            f"'{purpose}' is not a supported purpose; use one of {', '.join(accepted)}",
            param="purpose",
        )
    return purpose


async def _read_upload(
    reader: MultipartReader, files: Files, tenant: str, accepted: tuple[str, ...]
) -> FileObject:
    """Stream the ``file`` part into storage and record it once the body is complete.

    ``purpose`` may come before the file (a bad one is refused before any byte is stored)
    or after it (the stored content is dropped if it is bad or missing).
    """
    purpose: str | None = None
    stored: tuple[str, int] | None = None
    filename = "file"
    try:
        while (part := await reader.next_part()) is not None:
            if part.name == "purpose":
                purpose = _check_purpose(await reader.text(MAX_FIELD_BYTES), accepted)
            elif part.name == "file":
                if stored is not None:
                    raise InvalidRequest("the body has more than one 'file' part", param="file")
                filename = part.filename or filename
                stored = await files.store(reader.data())
        if stored is None:
            raise InvalidRequest("the body has no 'file' part", param="file")
        if purpose is None:
            raise InvalidRequest("the body has no 'purpose' field", param="purpose")
        return await files.record(tenant, stored[0], purpose, filename, stored[1])
    except BaseException:
        if stored is not None:
            await files.discard(stored[0])
        raise


@router.post("", response_model=FileObject, responses=_ERRORS, openapi_extra=_MULTIPART_BODY)
async def upload_file(
    request: Request, tenant: TenantDep, files: FilesDep, settings: SettingsDep
) -> FileObject:
    """Upload a file (multipart fields ``file`` and ``purpose``), streamed into storage."""
    limit = settings.files.max_file_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
        raise FileTooLarge(f"the file is larger than the limit of {limit} bytes")
    reader = MultipartReader(request.headers.get("content-type", ""), request.stream())
    return await _read_upload(reader, files, tenant, settings.files.purposes)


@router.get("", response_model=FileList, responses=_ERRORS)
async def list_files(
    tenant: TenantDep,
    files: FilesDep,
    purpose: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = MAX_LIST,
    order: Literal["asc", "desc"] = "desc",
) -> FileList:
    """The tenant's files, newest first unless ``order=asc``; ``after`` a file id pages on."""
    page, has_more = await files.list(tenant, purpose, after, limit, order)
    return FileList.of(page, has_more)


@router.get("/{file_id}", response_model=FileObject, responses=_ERRORS)
async def retrieve_file(file_id: FileId, tenant: TenantDep, files: FilesDep) -> FileObject:
    """One file's record."""
    return await files.get(tenant, file_id)


@router.get("/{file_id}/content", response_class=StreamingResponse, responses=_ERRORS)
async def file_content(file_id: FileId, tenant: TenantDep, files: FilesDep) -> StreamingResponse:
    """The file's bytes, streamed from storage."""
    file = await files.get(tenant, file_id)
    chunks = files.content(file)
    first = await anext(chunks, b"")  # a missing object answers 404 before any header is sent

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    disposition = f"attachment; filename*=UTF-8''{quote(file.filename, safe='')}"
    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={"Content-Disposition": disposition},
    )


@router.delete("/{file_id}", response_model=FileDeleted, responses=_ERRORS)
async def delete_file(file_id: FileId, tenant: TenantDep, files: FilesDep) -> FileDeleted:
    """Delete the file and its content."""
    await files.delete(tenant, file_id)
    return FileDeleted(id=file_id)
