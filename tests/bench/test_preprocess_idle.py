"""The idle bench's stream and its no-tier side's enqueue, on the real queue server."""

from __future__ import annotations

from pathlib import Path

from bench.preprocess_idle import CATALOGUE, NoTierStore, chat, stream
from bench.preprocess_images import samples
from queueing import keys
from queueing.catalogue import Catalogue
from queueing.connection import Client
from queueing.jobstore import JobStore
from queueing.settings import QueueSettings
from queueing.workqueue import WorkQueue


def test_the_stream_is_three_large_in_four_and_every_image_unique() -> None:
    large, small = [b"\xff\xd8L"], [b"\xff\xd8s1", b"\xff\xd8s2"]
    images = stream(large, small, 8, "t")
    assert len(set(images)) == 8
    assert [image.endswith(b"L") for image in images] == [True, True, True, False] * 2
    assert images[3].endswith(b"s1") and images[7].endswith(b"s2")


async def test_without_the_tier_a_chat_goes_straight_to_its_model_queue(
    tmp_path: Path, redis_client: Client, queue_settings: QueueSettings
) -> None:
    (tmp_path / "catalogue.toml").write_text(CATALOGUE)
    specs = Catalogue.load(tmp_path, tmp_path / "catalogue.toml")
    image = samples(0, 0, 1)[0].data
    inline, tier = chat(specs.get("vlm-inline"), image, 4), chat(specs.get("vlm-tier"), image, 4)
    await NoTierStore(redis_client, queue_settings).enqueue(inline)
    await JobStore(redis_client, queue_settings).enqueue(tier)
    assert (await redis_client.hget(keys.job(tier.id), "stream") or "").startswith("iq:pre:")
    queue = WorkQueue(redis_client, specs.get("vlm-inline"), "llm", queue_settings)
    claimed = []
    for _ in range(queue_settings.partitions_of("vlm-inline")):  # a claim visits one partition
        claimed += await queue.claim(100.0, 8, idle=True)
    assert [job.id for job in claimed] == [inline.id]
    assert claimed[0].record.images == inline.images
    assert claimed[0].record.images[0].startswith("data:image/jpeg;base64,")
