"""Image parts: where each is in the request, what kind of source it names."""

from __future__ import annotations

from oaiproto.images import ImageRef, image_refs, source_kind
from queueing.schemas import ChatMessage


def test_parts_are_found_in_order_with_their_place() -> None:
    messages = [
        ChatMessage.model_validate(m)
        for m in [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": "file-a"}},
                    {"type": "image_url", "image_url": {"url": "https://x/b.png"}},
                ],
            },
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]},
        ]
    ]
    assert image_refs(messages) == [
        ImageRef("messages.1.content.1", "file-a"),
        ImageRef("messages.1.content.2", "https://x/b.png"),
        ImageRef("messages.2.content.0", "data:,"),
    ]
    assert image_refs(messages)[0].param == "messages.1.content.1.image_url.url"


def test_source_kinds() -> None:
    assert source_kind("data:image/png;base64,AAAA") == "data"
    assert source_kind("HTTPS://example.com/a.png") == "http"
    assert source_kind("http://example.com/a.png") == "http"
    assert source_kind("file-abc_123") == "file"
    assert source_kind("ftp://example.com/a.png") is None
    assert source_kind("cat.png") is None and source_kind("file-") is None
