"""A job's keys follow from its id alone; partition tags spread evenly over the slots."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from queueing import keys
from queueing.keys import JobClass
from queueing.partition_tags import TAGS


def test_partition_tags_sit_at_evenly_spaced_slots() -> None:
    def reverse8(i: int) -> int:
        return int(f"{i:08b}"[::-1], 2)

    assert len(set(TAGS)) == len(TAGS) == keys.MAX_PARTITIONS
    assert [key_slot(tag.encode()) for tag in TAGS] == [reverse8(i) * 64 for i in range(256)]
    eight = sorted(key_slot(keys.tag(p).encode()) for p in range(8))
    assert eight == [i * 2048 for i in range(8)]


def test_a_jobs_keys_follow_from_its_id_alone() -> None:
    for partition in (0, 5, 255):
        job_id = keys.new_job_id(partition)
        assert keys.partition_of(job_id) == partition
        slot = key_slot(keys.queue("m", partition, JobClass.BATCH, 2).encode())
        derived = [
            keys.job(job_id),
            keys.events(job_id),
            keys.units("m", partition),
            keys.dead(partition),
            keys.events_channel(partition),
            keys.cancel_channel(partition),
            keys.wake_channel("m", partition),
            keys.output_shares("m", partition),
            keys.idempotency(partition, "tenant", "key"),
        ]
        assert {key_slot(k.encode()) for k in derived} == {slot}


@pytest.mark.parametrize("bad", ["", "job_", "job_x_ab", "job_256_ab", "job_1_", "nope_1_ab"])
def test_strings_that_are_not_job_ids_are_refused(bad: str) -> None:
    with pytest.raises(keys.InvalidJobId):
        keys.partition_of(bad)


def test_a_tenants_file_keys_share_one_slot_whatever_its_name() -> None:
    for tenant in ("acme", "a}b{c", ""):
        names = [
            keys.file_record(tenant, "file-1"),
            keys.file_index(tenant),
            keys.file_index(tenant, "batch"),
        ]
        assert len({key_slot(name.encode()) for name in names}) == 1
    assert keys.file_record("a", "file-1") != keys.file_record("b", "file-1")
