"""data: URL parsing: the bytes come back; anything else is refused with a reason."""

from __future__ import annotations

import base64

import pytest

from preprocess.dataurl import parse_data_url
from queueing.errors import InvalidImage


def test_base64_image_url_round_trips() -> None:
    payload = bytes(range(256)) * 4
    url = "data:image/PNG;base64," + base64.b64encode(payload).decode()
    parsed = parse_data_url(url, max_bytes=10_000)
    assert parsed.media_type == "image/png"
    assert parsed.data == payload


def test_whitespace_in_the_payload_is_ignored() -> None:
    encoded = base64.b64encode(b"abcdefgh" * 20).decode()
    url = "data:image/jpeg;base64," + "\n".join(
        encoded[i : i + 40] for i in range(0, len(encoded), 40)
    )
    assert parse_data_url(url, max_bytes=1000).data == b"abcdefgh" * 20


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://example.com/cat.png", "must be a data: URL"),
        ("data:image/png;base64", "no ','"),
        ("data:text/plain;base64,aGVsbG8=", "must be image/*"),
        ("data:image/png,rawbytes", "base64-encoded"),
        ("data:image/png;base64,@@@@", "not valid base64"),
        ("data:image/png;base64,", "no bytes"),
    ],
)
def test_bad_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(InvalidImage, match=reason) as caught:
        parse_data_url(url, max_bytes=1000, param="messages[0].content[1].image_url")
    assert caught.value.status == 400
    assert caught.value.param == "messages[0].content[1].image_url"


def test_too_big_a_payload_is_refused_before_decoding() -> None:
    url = "data:image/png;base64," + base64.b64encode(b"x" * 3000).decode()
    with pytest.raises(InvalidImage, match="over 2000 bytes"):
        parse_data_url(url, max_bytes=2000)
    assert len(parse_data_url(url, max_bytes=3000).data) == 3000
