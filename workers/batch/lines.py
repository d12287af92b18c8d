"""Split a file's byte stream into lines, with the byte offset where each one ends."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RawLine:
    """One line of a file: its bytes (None when longer than the limit), and where it ends.

    ``end`` is the offset of the byte after its newline: reading from there resumes after it.
    """

    number: int  # from 0
    data: bytes | None
    end: int

    @property
    def blank(self) -> bool:
        """True for a line with nothing but white space."""
        return self.data is not None and not self.data.strip()


async def read_lines(
    chunks: AsyncIterable[bytes], *, start: int, first_number: int, max_bytes: int
) -> AsyncGenerator[RawLine, None]:
    """The lines of ``chunks`` (read from byte ``start`` of the file on).

    A line longer than ``max_bytes`` is never held whole: it comes back with ``data`` None.
    """
    buffer = bytearray()
    too_long = False
    offset = start
    number = first_number
    async for chunk in chunks:
        pos = 0
        while pos < len(chunk):
            newline = chunk.find(b"\n", pos)
            stop = len(chunk) if newline < 0 else newline + 1
            offset += stop - pos
            if not too_long:
                buffer += chunk[pos:stop]
                too_long = len(buffer.rstrip(b"\r\n")) > max_bytes
                if too_long:
                    buffer.clear()
            pos = stop
            if newline >= 0:
                yield RawLine(number, None if too_long else _text(buffer), offset)
                number += 1
                buffer.clear()
                too_long = False
    if buffer or too_long:
        yield RawLine(number, None if too_long else _text(buffer), offset)


def _text(buffer: bytearray) -> bytes:
    return bytes(buffer).rstrip(b"\r\n")
