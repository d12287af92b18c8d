"""A batch's record: its hash round trip, terminal statuses and line job ids."""

from __future__ import annotations

from queueing import keys
from queueing.batch_record import Batch, BatchStatus, Stop


def batch(**fields: object) -> Batch:
    base: dict[str, object] = {
        "id": "batch_abc",
        "tenant": "t",
        "endpoint": "/v1/chat/completions",
        "input_file_id": "file-1",
        "completion_window": "24h",
        "status": BatchStatus.IN_PROGRESS,
        "created_at": 1,
        "expires_at": 2,
        "partitions": 4,
    }
    return Batch.model_validate(base | fields)


def test_the_hash_keeps_nested_fields_as_json_and_drops_nones() -> None:
    record = batch(metadata={"k": "v"}, errors=[{"code": "x", "line": 3}], stop=Stop.EXPIRED)
    fields = record.to_hash()
    assert fields["metadata"] == '{"k": "v"}' and "output_file_id" not in fields
    assert Batch.from_hash(fields) == record


def test_terminal_statuses_and_line_job_ids() -> None:
    assert {s for s in BatchStatus if s.terminal} == {"failed", "completed", "expired", "cancelled"}
    record = batch()
    assert record.job_id(7) == keys.line_job_id("batch_abc", 7, 4)
    assert record.job_id(7) != record.job_id(8)
