"""A ``multipart/form-data`` body read part by part as it arrives, never whole in memory.

python-multipart's push parser is fed the request's chunks; its callbacks queue events that
:class:`MultipartReader` hands out: a part's name and filename, then its data chunk by chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from queueing.errors import InvalidRequest

MAX_HEADER_BYTES = 16 * 1024


@dataclass(frozen=True)
class Part:
    """A part's headers: its form field name and, for a file, the filename."""

    name: str
    filename: str | None


class _PartEnd:
    """The current part's data is complete."""


_END = _PartEnd()
_Event = Part | bytes | _PartEnd


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type; 400 for anything else."""
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise InvalidRequest(
            "the body must be multipart/form-data with a boundary (fields 'file' and 'purpose')"
        )
    return options[b"boundary"]


class MultipartReader:
    """The parts of one body, in order; each part's data must be read (or skipped) in turn."""

    def __init__(self, content_type: str, body: AsyncIterable[bytes]) -> None:
        self._events = self._parse(boundary_of(content_type), body)
        self._in_part = False

    async def _parse(self, boundary: bytes, body: AsyncIterable[bytes]) -> AsyncIterator[_Event]:
        pending: list[_Event] = []
        header_name, header_value = bytearray(), bytearray()
        headers: dict[bytes, bytes] = {}
        finished = False

        def on_header_field(data: bytes, start: int, end: int) -> None:
            header_name.extend(data[start:end])

        def on_header_value(data: bytes, start: int, end: int) -> None:
            header_value.extend(data[start:end])

        def on_header_end() -> None:
            headers[bytes(header_name).lower()] = bytes(header_value)
            header_name.clear()
            header_value.clear()

        def on_headers_finished() -> None:
            _, options = parse_options_header(headers.get(b"content-disposition", b""))
            headers.clear()
            if b"name" not in options:
                raise InvalidRequest("a multipart part has no Content-Disposition name")
            filename = options.get(b"filename")
            pending.append(
                Part(
                    name=options[b"name"].decode(errors="replace"),
                    filename=None if filename is None else filename.decode(errors="replace"),
                )
            )

        def on_part_data(data: bytes, start: int, end: int) -> None:
            pending.append(data[start:end])

        def on_end() -> None:
            nonlocal finished
            finished = True

        parser = MultipartParser(
            boundary,
            {
                "on_header_field": on_header_field,
                "on_header_value": on_header_value,
                "on_header_end": on_header_end,
                "on_headers_finished": on_headers_finished,
                "on_part_data": on_part_data,
                "on_part_end": lambda: pending.append(_END),
                "on_end": on_end,
            },
            max_header_size=MAX_HEADER_BYTES,
        )
        try:
            async for chunk in body:
                parser.write(chunk)
                for event in pending:
                    yield event
                pending.clear()
            parser.finalize()
        except FormParserError as exc:
            raise InvalidRequest(f"the multipart body is malformed: {exc}") from exc
        except ClientDisconnect as exc:
            raise InvalidRequest("the client went away before the body was complete") from exc
        for event in pending:
            yield event
        if not finished:
            raise InvalidRequest("the multipart body ended before its closing boundary")

    async def next_part(self) -> Part | None:
        """The next part's headers (what is left of the current part is skipped); None at the
        end of the body."""
        async for event in self._events:
            if isinstance(event, Part):
                self._in_part = True
                return event
        return None

    async def data(self) -> AsyncIterator[bytes]:
        """The current part's data, chunk by chunk."""
        if not self._in_part:
            return
        async for event in self._events:
            if isinstance(event, _PartEnd):
                break
            if isinstance(event, bytes):
                yield event
        self._in_part = False

    async def text(self, limit: int) -> str:
        """The current part's data as text; a field longer than ``limit`` bytes is refused."""
        value = bytearray()
        async for chunk in self.data():
            value.extend(chunk)
            if len(value) > limit:
                raise InvalidRequest(f"a form field is longer than {limit} bytes")
        return value.decode(errors="replace")
