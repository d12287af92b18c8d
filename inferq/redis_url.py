"""Resolve where the queue lives: the configured server, or a managed embedded one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from queueing.server import EmbeddedValkey
from queueing.settings import Settings


@contextmanager
def queue_server(settings: Settings) -> Iterator[str]:
    """Yield the Redis URL; with no ``INFERQ_REDIS__URL``, run the embedded server meanwhile."""
    if settings.redis.url:
        yield settings.redis.url
        return
    with EmbeddedValkey(settings.redis.data_dir, settings.redis.embedded_port) as server:
        yield server.url
