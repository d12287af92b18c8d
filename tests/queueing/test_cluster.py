"""The local Valkey Cluster: formed from real nodes, slots spread evenly, failover by a replica."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from queueing.cluster import BUS_OFFSET, SLOTS, EmbeddedCluster, NodeView, parse_nodes
from queueing.errors import EmbeddedServerError
from tests.conftest import free_port_range


def node_client(port: int) -> redis.Redis:
    """A plain client on one node."""
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True)


def views(port: int) -> list[NodeView]:
    """CLUSTER NODES as the node on ``port`` sees the cluster."""
    with node_client(port) as client:
        return parse_nodes(str(client.execute_command("CLUSTER", "NODES")))


def cluster_client(cluster: EmbeddedCluster) -> RedisCluster:
    """redis-py's sync cluster client on every node."""
    nodes = [ClusterNode(host, port) for host, port in cluster.startup_nodes]
    return RedisCluster(startup_nodes=nodes, decode_responses=True)


def test_three_primaries_share_the_slots_evenly(valkey_cluster: EmbeddedCluster) -> None:
    assert valkey_cluster.url == f"redis+cluster://127.0.0.1:{valkey_cluster.ports[0]}"
    assert valkey_cluster.startup_nodes == [("127.0.0.1", p) for p in valkey_cluster.ports]
    for port in valkey_cluster.ports:
        with node_client(port) as client:
            info = str(client.execute_command("CLUSTER", "INFO"))
        assert "cluster_state:ok" in info
        assert "cluster_slots_assigned:16384" in info
        seen = views(port)
        assert sorted(v.port for v in seen) == valkey_cluster.ports
        counts = sorted(sum(hi - lo + 1 for lo, hi in v.slots) for v in seen if v.is_primary)
        assert counts == [5461, 5461, 5462]
        assert sum(counts) == SLOTS


def test_a_key_lands_on_the_node_that_owns_its_slot(valkey_cluster: EmbeddedCluster) -> None:
    client = cluster_client(valkey_cluster)
    owners = set()
    try:
        for i in range(30):
            key = f"cluster-test:{uuid.uuid4().hex}:{i}"
            client.set(key, str(i))
            slot = key_slot(key.encode())
            assert client.cluster_keyslot(key) == slot
            owner = valkey_cluster.owner_of(slot).port
            owners.add(owner)
            with node_client(owner) as direct:
                assert direct.get(key) == str(i)
            other = next(p for p in valkey_cluster.ports if p != owner)
            with node_client(other) as direct, pytest.raises(redis.ResponseError) as moved:
                direct.get(key)
            assert str(moved.value) == f"MOVED {slot} 127.0.0.1:{owner}"
    finally:
        client.close()
    assert owners == set(valkey_cluster.ports)


@pytest.mark.parametrize("taken_offset", [1, BUS_OFFSET + 2], ids=["client-port", "bus-port"])
def test_a_taken_port_range_is_refused(tmp_path: Path, taken_offset: int) -> None:
    base = free_port_range(3, 19300)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + taken_offset))
        blocker.listen()
        with pytest.raises(EmbeddedServerError, match=f"ports {base}-{base + 2} and"):
            EmbeddedCluster(tmp_path, base).start()
    assert not (tmp_path / f"node-{base}").exists(), "no node was started"


def test_a_restart_rejoins_the_cluster_on_disk(tmp_path: Path) -> None:
    base = free_port_range(6, 19600)
    with EmbeddedCluster(tmp_path, base) as cluster:
        client = cluster_client(cluster)
        client.set("survives-restart", "yes")
        client.close()
    with EmbeddedCluster(tmp_path, base) as cluster:
        client = cluster_client(cluster)
        assert client.get("survives-restart") == "yes"
        client.close()
    with pytest.raises(EmbeddedServerError, match="holds another cluster layout"):
        EmbeddedCluster(tmp_path, base, replicas=1).start()


def test_a_replica_takes_over_a_killed_primary(
    valkey_cluster_with_replicas: EmbeddedCluster,
) -> None:
    cluster = valkey_cluster_with_replicas
    replicas = [v for v in views(cluster.ports[0]) if not v.is_primary]
    assert sorted(v.port for v in replicas) == cluster.ports[3:]
    replica_of = {v.primary_id: v.port for v in replicas}
    assert len(replica_of) == 3, "one replica per primary"
    key = "failover-key"
    slot = key_slot(key.encode())
    old = cluster.owner_of(slot)
    with node_client(old.port) as direct:
        direct.set(key, "kept")
        assert direct.execute_command("WAIT", 1, 5000) == 1, "the replica has the write"

    assert cluster.kill_primary_of(key) == old.port
    started = time.monotonic()
    new_port = cluster.wait_promoted(slot, timeout_s=15)
    failover_s = time.monotonic() - started
    print(
        f"failover: primary {old.port} killed, replica {new_port} owns slot {slot} "
        f"and every node is ok after {failover_s:.2f} s"
    )

    assert new_port == replica_of[old.node_id]
    client = cluster_client(cluster)
    try:
        assert client.get(key) == "kept"
        client.set(key, "written after failover")
        assert client.get(key) == "written after failover"
    finally:
        client.close()
