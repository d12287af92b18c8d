"""The client factory: a cluster URL gives the cluster client, which routes FCALL by its
first key (no ``COMMAND GETKEYS``), waits for a turn, and loads the library where missing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError

from queueing import keys
from queueing.calls import Emit
from queueing.cluster import EmbeddedCluster
from queueing.connection import QueueCluster, connect, fcall, is_cluster


def unowned_emit(partition: int) -> Emit:
    """An emit for a job nobody runs: the function answers 0 (not owned)."""
    job_id = keys.new_job_id(partition)
    return Emit(
        job=keys.job(job_id),
        events=keys.events(job_id),
        channel=keys.events_channel(partition),
        consumer="nobody",
        job_id=job_id,
        pairs=[],
    )


def test_cluster_urls_are_told_apart() -> None:
    assert is_cluster("redis+cluster://127.0.0.1:7000")
    assert is_cluster("rediss+cluster://node:7000")
    assert not is_cluster("redis://127.0.0.1:6379/0") and not is_cluster("unix:///tmp/v.sock")


async def test_fcall_is_routed_by_its_first_key_without_asking_the_server(
    valkey_cluster: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await connect(valkey_cluster.url, max_connections=4)
    assert isinstance(client, QueueCluster) and isinstance(client, RedisCluster)

    async def no_getkeys(*args: Any) -> Any:
        raise AssertionError(f"COMMAND GETKEYS asked for {args}")

    monkeypatch.setattr(client.commands_parser, "get_keys", no_getkeys)
    call = unowned_emit(3)
    try:
        assert await fcall(client, call) == 0  # no such running job: not owned
        many = [fcall(client, call) for _ in range(40)]  # ten times the connections
        assert await asyncio.gather(*many) == [0] * 40
    finally:
        await client.aclose()


async def test_a_primary_without_the_library_gets_it_again(
    valkey_cluster: EmbeddedCluster,
) -> None:
    client = await connect(valkey_cluster.url)
    call = unowned_emit(5)
    try:
        node = client.get_node_from_key(call.job)
        await client.execute_command("FUNCTION", "DELETE", "inferq", target_nodes=node)
        assert await fcall(client, call) == 0
    finally:
        await client.aclose()


async def test_no_default_node_is_a_connection_error_not_a_crash(
    valkey_cluster: EmbeddedCluster,
) -> None:
    client = await connect(valkey_cluster.url)
    try:
        client.nodes_manager.default_node = None  # what redis-py leaves during a refresh
        with pytest.raises(RedisConnectionError):
            client.get_default_node()
    finally:
        await client.aclose()
