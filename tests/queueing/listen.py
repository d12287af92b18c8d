"""Test helpers for sharded channels: hear what is published, publish, drop subscribers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from queueing.connection import Client, QueueCluster
from queueing.subscriber import ShardedSubscriber


@contextlib.asynccontextmanager
async def heard(
    client: Client, channels: Sequence[str]
) -> AsyncIterator[asyncio.Queue[tuple[str, str]]]:
    """A queue of ``(channel, message)`` published on ``channels`` while the block runs."""
    messages: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    listener = ShardedSubscriber(client, channels, lambda c, d: messages.put_nowait((c, d)))
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.subscribed.wait(), 5)
        yield messages
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def next_message(messages: asyncio.Queue[tuple[str, str]], timeout_s: float = 5) -> str:
    """The next message heard (its data)."""
    _, data = await asyncio.wait_for(messages.get(), timeout_s)
    return data


async def publish(client: Client, channel: str, message: str) -> None:
    """SPUBLISH ``message`` on ``channel`` (at the node that owns it)."""
    await client.execute_command("SPUBLISH", channel, message)


async def kill_subscribers(client: Client) -> int:
    """Drop every pub/sub connection, on every node; returns how many."""
    if isinstance(client, QueueCluster):
        replies = await client.execute_command(
            "CLIENT", "KILL", "TYPE", "pubsub", target_nodes=QueueCluster.PRIMARIES
        )
        return sum(int(n) for n in replies.values())
    return int(await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub"))
