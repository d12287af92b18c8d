"""Splitting a streamed file into lines with resumable offsets."""

from __future__ import annotations

from collections.abc import AsyncIterator

from workers.batch.lines import RawLine, read_lines


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def _read(
    data: bytes, size: int, *, start: int = 0, first: int = 0, limit: int = 100
) -> list[RawLine]:
    reader = read_lines(
        _chunks(data[start:], size), start=start, first_number=first, max_bytes=limit
    )
    return [line async for line in reader]


async def test_lines_split_across_chunks_with_offsets() -> None:
    data = b'{"a":1}\r\n{"b":22}\n\n{"c":3}'
    for size in (1, 3, 7, 1000):
        lines = await _read(data, size)
        assert [raw.data for raw in lines] == [b'{"a":1}', b'{"b":22}', b"", b'{"c":3}']
        assert [raw.number for raw in lines] == [0, 1, 2, 3]
        assert [raw.end for raw in lines] == [9, 18, 19, len(data)]
        assert [raw.blank for raw in lines] == [False, False, True, False]


async def test_reading_from_an_offset_resumes_after_that_line() -> None:
    data = b"one\ntwo\nthree\n"
    first = (await _read(data, 4))[0]
    rest = await _read(data, 4, start=first.end, first=1)
    assert [(raw.number, raw.data) for raw in rest] == [(1, b"two"), (2, b"three")]
    assert rest[-1].end == len(data)


async def test_a_line_over_the_limit_is_not_kept() -> None:
    data = b"short\n" + b"x" * 50 + b"\nafter\n"
    lines = await _read(data, 8, limit=20)
    assert [raw.data for raw in lines] == [b"short", None, b"after"]
    assert lines[1].end == 6 + 51
    assert not lines[1].blank


async def test_a_line_exactly_at_the_limit_is_kept() -> None:
    lines = await _read(b"x" * 20 + b"\r\n", 3, limit=20)
    assert lines[0].data == b"x" * 20
