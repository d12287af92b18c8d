"""Everything a server holds, as text: to show that a secret is stored nowhere."""

from __future__ import annotations

from queueing.connection import Client


async def server_text(client: Client) -> str:
    """Every key's name and contents on every primary (strings, hashes, streams, collections)."""
    parts: list[str] = []
    async for name in client.scan_iter(count=1000):
        parts.append(name)
        kind = await client.type(name)
        if kind == "string":
            parts.append(await client.get(name))
        elif kind == "hash":
            parts += [f"{k}={v}" for k, v in (await client.hgetall(name)).items()]
        elif kind == "stream":
            parts += [str(entry) for entry in await client.xrange(name)]
        elif kind == "list":
            parts += await client.lrange(name, 0, -1)
        elif kind == "set":
            parts += sorted(await client.smembers(name))
        elif kind == "zset":
            parts += await client.zrange(name, 0, -1)
    return "\n".join(parts)
