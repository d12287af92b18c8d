"""data: URL parsing: the bytes come back; anything else is refused with a reason."""

from __future__ import annotations

import base64

import pytest

from oaiproto.dataurl import check_format, media_types, parse_data_url, sniff
from queueing.errors import InvalidImage

FORMATS = ["JPEG", "PNG", "WEBP", "GIF"]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
JPEG = b"\xff\xd8\xff\xe0" + bytes(100)


def data_url(data: bytes, media_type: str = "image/png") -> str:
    """``data`` as a base64 data: URL."""
    return f"data:{media_type};base64," + base64.b64encode(data).decode()


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
        parse_data_url(url, max_bytes=1000, param="messages.0.content.1.image_url.url")
    assert caught.value.status == 400
    assert caught.value.param == "messages.0.content.1.image_url.url"


def test_too_big_a_payload_is_refused_before_decoding() -> None:
    url = "data:image/png;base64," + base64.b64encode(b"x" * 3000).decode()
    with pytest.raises(InvalidImage, match="over 2000 bytes"):
        parse_data_url(url, max_bytes=2000)
    assert len(parse_data_url(url, max_bytes=3000).data) == 3000


def test_allowed_formats_pass_by_media_type_and_signature() -> None:
    assert parse_data_url(data_url(PNG), max_bytes=1000, formats=FORMATS).data == PNG
    assert parse_data_url(data_url(JPEG, "image/jpg"), max_bytes=1000, formats=FORMATS).data
    assert "image/webp" in media_types(FORMATS) and "image/bmp" not in media_types(FORMATS)


@pytest.mark.parametrize(
    ("data", "media_type", "reason"),
    [
        (PNG, "image/bmp", "media type image/bmp is not allowed"),
        (PNG, "image/svg+xml", "media type image/svg\\+xml is not allowed"),
        (b"BM" + bytes(60), "image/png", "the image is BMP, not an allowed format"),
        (b"II*\x00" + bytes(60), "image/png", "the image is TIFF"),
        (b"<html>not an image</html>", "image/png", "not an image in an allowed format"),
    ],
)
def test_disallowed_formats_and_non_images_are_refused(
    data: bytes, media_type: str, reason: str
) -> None:
    with pytest.raises(InvalidImage, match=reason):
        parse_data_url(data_url(data, media_type), max_bytes=1000, formats=FORMATS)


def test_signatures() -> None:
    assert sniff(PNG) == "PNG" and sniff(JPEG) == "JPEG" and sniff(b"GIF89a...") == "GIF"
    assert sniff(b"RIFF\x10\x00\x00\x00WEBPVP8 ") == "WEBP"
    assert sniff(b"%PDF-1.7") is None


def test_unknown_bytes_pass_when_an_allowed_format_has_no_known_signature() -> None:
    check_format(b"\x00\x00\x00\x1cftypavif", ["PNG", "AVIF"])  # the preprocess tier decides
    with pytest.raises(InvalidImage, match="not an image"):
        check_format(b"\x00\x00\x00\x1cftypavif", ["PNG"])
