"""The bench's server CPU meter reads every node of a cluster."""

from __future__ import annotations

import redis

from bench.sides import server_cpu_s
from queueing.cluster import EmbeddedCluster
from queueing.connection import connect
from queueing.server import EmbeddedValkey


def _cpu_s(port: int) -> float:
    with redis.Redis(port=port, decode_responses=True) as node:
        info = node.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def test_server_cpu_is_summed_over_every_cluster_node(
    valkey_cluster: EmbeddedCluster,
) -> None:
    client = await connect(valkey_cluster.url)
    try:
        before = sum(_cpu_s(port) for port in valkey_cluster.ports)
        total = await server_cpu_s(client)
        after = sum(_cpu_s(port) for port in valkey_cluster.ports)
    finally:
        await client.aclose()
    assert before <= total <= after


async def test_server_cpu_of_a_single_server(valkey: EmbeddedValkey) -> None:
    client = await connect(valkey.url)
    try:
        before = _cpu_s(valkey.port)
        total = await server_cpu_s(client)
    finally:
        await client.aclose()
    assert before <= total <= _cpu_s(valkey.port)
