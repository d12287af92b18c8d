"""One client factory for the queue server (a single server or a cluster), the Lua library
loaded on every primary, and the one place that runs inferq's function calls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, ResponseError

from queueing.calls import Call, library
from queueing.errors import ServerError, translated
from queueing.settings import RedisSettings

# ``redis+cluster://host:port`` (``rediss+cluster://`` with TLS) names a cluster node.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
LUA_SOURCE = library()

Client: TypeAlias = "aioredis.Redis | QueueCluster"
_IN_TURN: ContextVar[bool] = ContextVar("inferq_in_turn", default=False)


class HiredisConnection(aioredis.Connection):  # type: ignore[misc]  # redis is untyped here
    """A TCP connection that packs commands in C (hiredis), ten times faster than redis-py.

    Anything hiredis does not take (bool, None, memoryview, enum ints, non-UTF-8 encodings)
    falls back to redis-py, which encodes or rejects it exactly as before.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        """Pack one command into the Redis protocol."""
        utf8 = self.encoder.encoding == "utf-8" and self.encoder.encoding_errors == "strict"
        if utf8 and isinstance(args[0], str) and " " not in args[0]:
            try:
                return [hiredis.pack_command(args)]
            except TypeError:
                pass
        packed: list[bytes] = super().pack_command(*args)
        return packed


class QueueCluster(RedisCluster):  # type: ignore[misc]  # redis is untyped here
    """redis-py's cluster client, routing FCALL by its first key without asking the server,
    and waiting for a free connection rather than failing.

    redis-py asks ``COMMAND GETKEYS`` (two round trips) for every FCALL; every call inferq
    sends keeps all its keys in one slot, so the first key's slot is the call's slot. This
    overrides a private method of redis-py 5.3 (pinned; tests/queueing/test_connection.py).
    Its nodes raise "Too many connections" past ``max_connections``, where the single-server
    pool can block: at most ``max_connections`` commands and pipelines run at once here (each
    holds at most one connection per node), the rest wait their turn.
    """

    def __init__(self, *args: Any, max_connections: int = 64, **kwargs: Any) -> None:
        super().__init__(*args, max_connections=max_connections, **kwargs)
        self.gate = asyncio.Semaphore(max_connections)
        options = self.nodes_manager.connection_kwargs
        if options.get("connection_class") is aioredis.Connection:  # not TLS: pack in C
            options["connection_class"] = HiredisConnection
            for node in self.nodes_manager.startup_nodes.values():
                node.connection_class = HiredisConnection

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold one turn (a pipeline's redirected commands run within its turn)."""
        if _IN_TURN.get():
            yield
            return
        async with self.gate:
            token = _IN_TURN.set(True)
            try:
                yield
            finally:
                _IN_TURN.reset(token)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """One command, once a turn is free."""
        async with self.turn():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> GatedPipeline:
        """A pipeline that takes one turn for its whole execution."""
        if transaction or shard_hint:
            raise RedisClusterException("a cluster pipeline has no transaction or shard hint")
        return GatedPipeline(self)

    def get_default_node(self) -> Any:
        """The default node; while a failed node's topology is being refreshed, redis-py 5.3
        has none and a concurrent pipeline would dereference ``None``: say so instead."""
        node = self.nodes_manager.default_node
        if node is None:
            raise RedisConnectionError("the cluster's topology is being refreshed")
        return node

    async def _determine_slot(self, command: str, *args: Any) -> int:
        if str(command).upper() in ("FCALL", "FCALL_RO") and len(args) > 2 and int(args[1]) > 0:
            slot: int = self.keyslot(args[2])
            return slot
        slot = await super()._determine_slot(command, *args)
        return slot


class GatedPipeline(ClusterPipeline):  # type: ignore[misc]  # redis is untyped here
    """A cluster pipeline that runs within its client's turns."""

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        """Send the stacked commands, once a turn is free."""
        async with self._client.turn():
            return await super().execute(raise_on_error, allow_redirections)


def is_cluster(url: str) -> bool:
    """True when ``url`` names a cluster (``redis+cluster://``)."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


async def connect(
    url: str,
    *,
    max_connections: int = 64,
    blocking: bool = False,
    load_library: bool = True,
    **kwargs: Any,
) -> Client:
    """A client (with inferq's functions loaded unless ``load_library`` is False): a cluster
    for ``redis+cluster://``, else a single server (``redis://``, ``rediss://``, ``unix://``).

    ``blocking`` makes a caller wait for a free pooled connection instead of failing with
    "Too many connections" (servers with many concurrent requests want this).
    """
    client: Client
    kwargs.setdefault("decode_responses", True)  # False: a client for binary values (images)
    if is_cluster(url):
        scheme = urlsplit(url).scheme
        plain = CLUSTER_SCHEMES[scheme] + url[len(scheme) :]
        client = QueueCluster.from_url(plain, max_connections=max_connections, **kwargs)
    else:
        pool_class = aioredis.BlockingConnectionPool if blocking else aioredis.ConnectionPool
        kwargs.setdefault("connection_class", HiredisConnection)  # rediss/unix override it
        pool = pool_class.from_url(url, max_connections=max_connections, **kwargs)
        client = aioredis.Redis.from_pool(pool)
    try:
        with translated(f"cannot use the queue server at {url}"):
            if load_library:
                await load_functions(client)
            else:
                await client.ping()
    except ServerError:
        await client.aclose()
        raise
    return client


async def load_functions(client: Client) -> None:
    """Load (or replace) the ``inferq`` library on the server, or on every primary."""
    await client.function_load(LUA_SOURCE, replace=True)


def _missing_function(exc: BaseException) -> bool:
    return isinstance(exc, ResponseError) and "Function not found" in str(exc)


async def durable_writes(client: Client, settings: RedisSettings) -> WaitAof | None:
    """How to wait for writes to be fsynced (``WAITAOF``), or None where the server cannot."""
    try:
        with translated("WAITAOF"):
            await client.execute_command("WAITAOF", 0, 0, 0)
    except ServerError:
        return None
    return WaitAof(settings.wait_replicas, settings.wait_replicas_timeout_ms)


async def fcall(client: Client, call: Call) -> Any:
    """Run one call; a primary that lacks the library (new, or failed over) gets it first."""
    with translated("the queue server failed"):
        try:
            return await client.fcall(*call.fcall())
        except ResponseError as exc:
            if not _missing_function(exc):
                raise
            await load_functions(client)
            return await client.fcall(*call.fcall())


async def fcall_many(
    client: Client, calls: Sequence[Call], *, wait_aof: WaitAof | None = None
) -> list[Any]:
    """Run many calls in one pipeline (one round trip per node), each reply or error in order.

    With ``wait_aof``, each node the calls touched also gets a ``WAITAOF`` in the same
    pipeline (the same connection, after the writes), so the replies come back only once the
    writes are fsynced there (and, where asked, on a replica); their replies are left out.
    """
    if not calls:
        return []
    with translated("the queue server failed"):
        replies = await _pipeline(client, calls, wait_aof)
        missing = [i for i, reply in enumerate(replies) if _missing_function(reply)]
        if missing:
            await load_functions(client)
            again = await _pipeline(client, [calls[i] for i in missing], wait_aof)
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
    return replies


class WaitAof:
    """``WAITAOF`` after a pipeline's writes: local fsync, and ``replicas`` replicas' too.

    ``replicas`` None: one replica where the node has any (a cluster's slot map says), else
    none. ``timeout_ms`` 0 waits for ever (the local fsync comes within a second or so).
    """

    def __init__(self, replicas: int | None = None, timeout_ms: int = 0) -> None:
        self.replicas = replicas
        self.timeout_ms = timeout_ms

    def commands(self, client: Client, calls: Sequence[Call]) -> list[tuple[Any, ...]]:
        """One ``WAITAOF`` per node the calls touch (a single server: one)."""
        if not isinstance(client, QueueCluster):
            return [("WAITAOF", 1, self.replicas or 0, self.timeout_ms, None)]
        nodes: dict[str, tuple[Any, int]] = {}
        for call in calls:
            slot = client.keyslot(call.declared_keys()[0])
            owners = client.nodes_manager.slots_cache.get(slot) or [None]
            node = owners[0]
            if node is not None and node.name not in nodes:
                has_replica = 1 if len(owners) > 1 else 0
                nodes[node.name] = (node, has_replica if self.replicas is None else self.replicas)
        return [("WAITAOF", 1, r, self.timeout_ms, node) for node, r in nodes.values()]


async def _pipeline(client: Client, calls: Sequence[Call], wait_aof: WaitAof | None) -> list[Any]:
    waits = wait_aof.commands(client, calls) if wait_aof else []
    async with client.pipeline(transaction=False) as pipe:
        for call in calls:
            pipe.fcall(*call.fcall())
        for *command, node in waits:
            if node is None:
                pipe.execute_command(*command)
            else:
                pipe.execute_command(*command, target_nodes=node)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    for reply in replies[len(calls) :]:
        if isinstance(reply, Exception):
            raise reply
    return replies[: len(calls)]
