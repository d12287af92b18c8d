"""A pure-ASGI guard that answers 413 to bodies larger than the configured limit."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import BodyTooLarge, count_rejection
from oaiproto.errors import error_body


class BodyLimit:
    """Refuse a body over ``max_bytes``: by its Content-Length, or by counting what arrives.

    The body is read (at most ``max_bytes``) before the app runs and replayed to it, so a
    chunked upload without Content-Length cannot slip past the limit. Routes in ``streamed``
    (method, path) read their body as a stream under a limit of their own, and pass unread.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        streamed: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.streamed:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        pending: list[Message] = [message]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        count_rejection(scope.get("app"), BodyTooLarge.code)
        message = f"the request body is larger than the limit of {self.max_bytes} bytes"
        body = json.dumps(error_body(message, BodyTooLarge.kind, BodyTooLarge.code, None)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
