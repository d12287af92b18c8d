"""One subscribe-and-resubscribe loop for sharded pub/sub channels (SSUBSCRIBE).

A sharded channel lives on the node that owns its slot, so a notification reaches only that
node: the loop opens one connection per node that owns some of the channels (one in all on a
single server). A lost connection, or a slot that moves (the server then sends
``sunsubscribe``), ends the round: the loop refreshes the cluster's slot map and subscribes
again. Whatever was published meanwhile is lost, so ``on_subscribed`` tells the owner to
re-read what it waits for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import RedisError

from queueing.connection import Client, QueueCluster

log = logging.getLogger(__name__)


class Resubscribe(Exception):
    """A channel's slot moved: subscribe again from a fresh slot map."""


async def _all_set(events: list[asyncio.Event]) -> None:
    for event in events:
        await event.wait()


class ShardedSubscriber:
    """Calls ``on_message(channel, data)`` for every message on ``channels``."""

    def __init__(
        self,
        client: Client,
        channels: Sequence[str],
        on_message: Callable[[str, str], None],
        *,
        on_subscribed: Callable[[], None] = lambda: None,
        retry_s: float = 0.5,
        name: str = "subscriber",
    ) -> None:
        self.client = client
        self.channels = list(channels)
        self.on_message = on_message
        self.on_subscribed = on_subscribed
        self.retry_s = retry_s
        self.name = name
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        """Listen until cancelled, resubscribing after errors."""
        while True:
            try:
                await self._round()
            except (RedisError, OSError, Resubscribe) as exc:
                log.warning("%s lost its subscription (%s); resubscribing", self.name, exc)
            self.subscribed.clear()
            await asyncio.sleep(self.retry_s)
            if isinstance(self.client, QueueCluster):
                try:
                    await self.client.nodes_manager.initialize()
                except (RedisError, OSError) as exc:
                    log.warning("%s cannot refresh the slot map: %s", self.name, exc)

    def _by_node(self) -> list[tuple[Any, list[str]]]:
        """(connection factory arguments, channels) per node."""
        if not isinstance(self.client, QueueCluster):
            pool = self.client.connection_pool
            return [((pool.connection_class, pool.connection_kwargs), self.channels)]
        groups: dict[str, tuple[Any, list[str]]] = {}
        for channel in self.channels:
            node = self.client.get_node_from_key(channel)
            entry = groups.setdefault(
                node.name, ((node.connection_class, node.connection_kwargs), [])
            )
            entry[1].append(channel)
        return list(groups.values())

    async def _round(self) -> None:
        groups = self._by_node()
        confirmed: list[asyncio.Event] = [asyncio.Event() for _ in groups]
        tasks = [
            asyncio.create_task(self._listen(factory, channels, done))
            for (factory, channels), done in zip(groups, confirmed, strict=True)
        ]
        waiting = asyncio.create_task(_all_set(confirmed))
        try:
            racing: list[asyncio.Task[None]] = [*tasks, waiting]
            done, _ = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            if waiting in done:
                self.subscribed.set()
                self.on_subscribed()
            finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in finished:
                task.result()
        finally:
            for task in [*tasks, waiting]:
                task.cancel()
            await asyncio.gather(*tasks, waiting, return_exceptions=True)

    async def _listen(self, factory: Any, channels: list[str], confirmed: asyncio.Event) -> None:
        connection_class, kwargs = factory
        connection = connection_class(**kwargs)
        try:
            await connection.connect()
            # A cluster node takes the channels of one slot per SSUBSCRIBE.
            await connection.send_packed_command(
                connection.pack_commands([("SSUBSCRIBE", channel) for channel in channels])
            )
            pending = set(channels)
            while True:
                kind, channel, data = await connection.read_response()
                if kind == "smessage":
                    self.on_message(channel, data)
                elif kind == "ssubscribe":
                    pending.discard(channel)
                    if not pending:
                        confirmed.set()
                elif kind == "sunsubscribe":
                    raise Resubscribe(f"{channel} moved")
        finally:
            await connection.disconnect()
