"""Prepared images in the queue server: stored once per content hash, read by LLM workers.

A prepared image lives under :func:`keys.prepared_image` in the partition of the jobs that use
it, with the jobs' retention (``result_ttl_s``), renewed at each hand-off that uses it. Its
bytes are the preprocess tier's output (JPEG or PNG: already compressed, stored as they are).
After the hand-off a job's ``images`` hold references (``prepared:<digest>``) instead of
its sources.
"""

from __future__ import annotations

from collections.abc import Sequence

from queueing import keys
from queueing.connection import Client
from queueing.errors import translated

PREPARED = "prepared:"


class ImageMissing(LookupError):
    """A prepared image a job refers to is gone (it outlived its retention)."""


def reference(digest: str) -> str:
    """What a job's ``images`` hold for a prepared image."""
    return f"{PREPARED}{digest}"


def is_reference(source: str) -> bool:
    """True for a prepared image's reference (not a source as sent)."""
    return source.startswith(PREPARED)


def digest_of(ref: str) -> str:
    """The content hash a reference names."""
    if not is_reference(ref):
        raise ValueError(f"{ref[:40]!r} is not a prepared image's reference")
    return ref.removeprefix(PREPARED)


class PreparedImages:
    """Reads and writes prepared images (bytes) by partition and content hash."""

    def __init__(self, client: Client, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s

    async def find(self, partitions: Sequence[int], digest: str) -> tuple[int, bytes] | None:
        """The image from the first of ``partitions`` that holds it, with that partition."""
        with translated("cannot read prepared images"):
            async with self.client.pipeline(transaction=False) as pipe:
                for partition in partitions:
                    pipe.get(keys.prepared_image(partition, digest))
                found: list[bytes | None] = await pipe.execute()
        return next(((p, v) for p, v in zip(partitions, found, strict=True) if v), None)

    async def put(self, partition: int, digest: str, data: bytes) -> None:
        """Store (or refresh) an image with the jobs' retention."""
        with translated("cannot store a prepared image"):
            await self.client.set(keys.prepared_image(partition, digest), data, ex=self.ttl_s)

    async def refresh(self, partition: int, digest: str) -> bool:
        """Renew the image's retention; False when it is gone."""
        with translated("cannot refresh a prepared image"):
            return bool(
                await self.client.expire(keys.prepared_image(partition, digest), self.ttl_s)
            )

    async def read(self, job_id: str, refs: Sequence[str]) -> list[bytes]:
        """A job's prepared images, in order; :class:`ImageMissing` when one is gone."""
        partition = keys.partition_of(job_id)
        names = [keys.prepared_image(partition, digest_of(ref)) for ref in refs]
        with translated("cannot read prepared images"):
            async with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.get(name)
                found: list[bytes | None] = await pipe.execute()
        missing = [ref for ref, data in zip(refs, found, strict=True) if data is None]
        if missing:
            raise ImageMissing(f"{len(missing)} prepared image(s) of the job expired")
        return [data for data in found if data is not None]
