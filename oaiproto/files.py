"""OpenAI's answers of the Files API that are not a file object itself."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from queueing.files import FileObject


class FileList(BaseModel):
    """One page of ``GET /v1/files``."""

    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool

    @classmethod
    def of(cls, page: list[FileObject], has_more: bool) -> FileList:
        """The page, with its first and last ids."""
        first, last = (page[0].id, page[-1].id) if page else (None, None)
        return cls(data=page, first_id=first, last_id=last, has_more=has_more)


class FileDeleted(BaseModel):
    """The answer to ``DELETE /v1/files/{id}``."""

    id: str
    object: Literal["file"] = "file"
    deleted: bool = True
