"""The Lua <-> Python contract, by name: each function's KEYS and ARGV, declared once.

Every call is a frozen dataclass whose fields are marked as a key or an argument, in the
order they are sent; one key tail and one argument tail (variadic lists) may follow the
named ones. The Lua library reads ``keys[K.<function>.<name>]`` and ``args[A.<function>.<name>]``
from a prelude generated from these classes, and the shared constants (group name, statuses,
counter fields) come from here too, so nothing is typed twice.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ClassVar

from queueing import keys
from queueing.schemas import JobStatus

_ROLE = "role"
_KEY, _ARG, _KEY_TAIL, _ARG_TAIL = "key", "arg", "key_tail", "arg_tail"

# Fields of a partition's units hash (``u:``/``n:`` prefix a queue's units and job count).
COUNTERS = {
    "QUEUED": "queued",
    "INFLIGHT": "inflight",
    "ARRIVALS": "arrivals",
    "ARRIVED_UNITS": "arrived_units",
    "UNITS_OF": "u:",
    "JOBS_OF": "n:",
    # Jobs of the partition waiting for or in image preparation (not yet queued units).
    "PRE_UNITS": "pre_units",
    "PRE_JOBS": "pre_jobs",
    "TENANT_OF": "tenant:",  # units a tenant has queued or running in the partition
}


def key() -> Any:
    """A named entry of KEYS."""
    return field(metadata={_ROLE: _KEY})


def arg() -> Any:
    """A named entry of ARGV."""
    return field(metadata={_ROLE: _ARG})


def key_tail() -> Any:
    """Keys after the named ones (a list)."""
    return field(metadata={_ROLE: _KEY_TAIL})


def arg_tail() -> Any:
    """Arguments after the named ones (a list)."""
    return field(metadata={_ROLE: _ARG_TAIL})


def _fields(cls: type[Call], role: str) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get(_ROLE) == role]


@dataclass(frozen=True)
class Call:
    """One FCALL of the ``inferq`` library."""

    function: ClassVar[str]

    def declared_keys(self) -> list[str]:
        """KEYS in the order the function reads them."""
        cls = type(self)
        named = [str(getattr(self, name)) for name in _fields(cls, _KEY)]
        tail = [str(item) for name in _fields(cls, _KEY_TAIL) for item in getattr(self, name)]
        return named + tail

    def argv(self) -> list[str]:
        """ARGV in the order the function reads them."""
        cls = type(self)
        named = [str(getattr(self, name)) for name in _fields(cls, _ARG)]
        tail = [str(item) for name in _fields(cls, _ARG_TAIL) for item in getattr(self, name)]
        return named + tail

    def fcall(self) -> list[str | int]:
        """``FCALL``'s arguments after the command name: function, numkeys, KEYS, ARGV."""
        call_keys = self.declared_keys()
        return [self.function, len(call_keys), *call_keys, *self.argv()]


@dataclass(frozen=True)
class Enqueue(Call):
    """Store a job and queue it (optionally under an idempotency key)."""

    function = "iq_enqueue"
    job: str = key()
    events: str = key()
    queue: str = key()
    units: str = key()
    wake: str = key()
    fair: str = key()  # the partition's fair-sharing hash
    active: str = key()  # the job's class's active tenants
    order: str = key()  # the queue's arrival set (``queue`` is its waiting set)
    idem: Sequence[str] = key_tail()  # [] or [the idempotency key]
    job_id: str = arg()
    cost: float = arg()
    qfield: str = arg()
    ceiling: float = arg()
    idem_ttl: int = arg()
    tenant: str = arg()
    fields: Sequence[str] = arg_tail()  # the job hash, flattened


@dataclass(frozen=True)
class Pick(Call):
    """Deliver a partition's best undelivered entries to a consumer (class, band, ageing)."""

    function = "iq_pick"
    units: str = key()
    fair: str = key()
    # Per queue (priority order: class major, band minor) its stream, then per queue its
    # waiting set, then per queue its arrival set, then per class its active tenants.
    queues: Sequence[str] = key_tail()
    consumer: str = arg()
    now_ms: int = arg()
    ageing_ms: int = arg()
    room: float = arg()
    max_count: int = arg()
    idle: int = arg()
    bound: str = arg()  # '' or the best score another partition offers
    batch_from: int = arg()  # index of the first batch-class queue: its ageing stops there
    batch_room: str = arg()  # '' or the units batch entries may still take (the batch share)
    batch_slots: str = arg()  # '' or how many batch entries may still be taken
    weights: str = arg()  # JSON {tenant: weight} of tenants whose weight is not 1
    reserved: str = arg()  # JSON {tenant: [units/s in this partition, burst units]}
    qfields: Sequence[str] = arg_tail()  # class:band of each queue


@dataclass(frozen=True)
class Reclaim(Call):
    """Deliver entries whose lease lapsed (XAUTOCLAIM) to a consumer."""

    function = "iq_reclaim"
    queues: Sequence[str] = key_tail()
    consumer: str = arg()
    min_idle_ms: int = arg()
    max_count: int = arg()


@dataclass(frozen=True)
class Take(Call):
    """Mark delivered jobs running (or cancel, dead-letter, drop them); return their hashes."""

    function = "iq_take"
    units: str = key()
    dead: str = key()
    channel: str = key()
    jobs: Sequence[str] = key_tail()  # queue, job, events per delivered entry
    consumer: str = arg()
    now: float = arg()
    ttl: int = arg()
    max_deliveries: int = arg()
    entries: Sequence[str] = arg_tail()  # entry id, job id per delivered entry
    usage: str = key()  # the partition's usage bucket (keys.usage) and its all-time totals
    usage_total: str = key()
    usage_ttl: int = arg()


@dataclass(frozen=True)
class Renew(Call):
    """Renew leases; report the ones lost and the ones asked to cancel (by index)."""

    function = "iq_renew"
    jobs: Sequence[str] = key_tail()  # queue, job per held job
    consumer: str = arg()
    entries: Sequence[str] = arg_tail()  # entry id per held job


@dataclass(frozen=True)
class Emit(Call):
    """Append events to a job's stream while the consumer still owns it."""

    function = "iq_emit"
    job: str = key()
    events: str = key()
    channel: str = key()
    consumer: str = arg()
    job_id: str = arg()
    pairs: Sequence[str] = arg_tail()  # kind, data, ...


@dataclass(frozen=True)
class Complete(Call):
    """Finish a job: fields, final events, ack, counters, retention, output share."""

    function = "iq_complete"
    job: str = key()
    events: str = key()
    queue: str = key()
    units: str = key()
    shares: str = key()
    channel: str = key()
    consumer: str = arg()
    entry: str = arg()
    job_id: str = arg()
    status: str = arg()
    now: float = arg()
    ttl: int = arg()
    tenant: str = arg()
    share: str = arg()  # '' or completion tokens / max_tokens
    alpha: float = arg()
    nfields: int = arg()
    rest: Sequence[str] = arg_tail()  # nfields field/value pairs, then kind/data pairs
    usage: str = key()  # the partition's usage bucket (keys.usage) and its all-time totals
    usage_total: str = key()
    usage_ttl: int = arg()


@dataclass(frozen=True)
class Release(Call):
    """Give a running job back to its queue under a new entry."""

    function = "iq_release"
    job: str = key()
    events: str = key()
    queue: str = key()
    units: str = key()
    wake: str = key()
    channel: str = key()
    waiting: str = key()  # the waiting set the job goes back to
    fair: str = key()
    active: str = key()
    order: str = key()  # the queue's arrival set
    consumer: str = arg()
    entry: str = arg()
    job_id: str = arg()
    reason: str = arg()
    graceful: int = arg()


@dataclass(frozen=True)
class Cancel(Call):
    """Cancel a queued job at once, or flag a running one and tell its worker."""

    function = "iq_cancel"
    job: str = key()
    events: str = key()
    queue: str = key()
    units: str = key()
    channel: str = key()
    cancel_channel: str = key()
    fair: str = key()
    active: str = key()
    order: str = key()  # the queue's arrival set (``queue`` is its waiting set)
    job_id: str = arg()
    now: float = arg()
    ttl: int = arg()
    usage: str = key()  # the partition's usage bucket (keys.usage) and its all-time totals
    usage_total: str = key()
    usage_ttl: int = arg()


@dataclass(frozen=True)
class BatchRecord(Call):
    """Record finished lines of a batch, each line once."""

    function = "iq_batch_record"
    batch: str = key()
    written: str = key()
    outputs: str = key()
    errors: str = key()
    lines: Sequence[str] = arg_tail()  # line, 'out' | 'err', JSON line, in/out tokens, ...


@dataclass(frozen=True)
class BatchMove(Call):
    """Change a batch's status if it is one of ``from_`` (with more fields)."""

    function = "iq_batch_move"
    batch: str = key()
    from_: str = arg()  # comma separated
    to: str = arg()
    fields: Sequence[str] = arg_tail()  # field, value, ...


@dataclass(frozen=True)
class Lease(Call):
    """Take or renew a lease held by ``token``."""

    function = "iq_lease"
    lease: str = key()
    token: str = arg()
    ttl_ms: int = arg()


@dataclass(frozen=True)
class RateLimit(Call):
    """Charge a tenant's request and unit buckets together, or neither; or only read them."""

    function = "iq_ratelimit"
    bucket: str = key()
    requests_per_minute: str = arg()  # '' = unlimited
    units_per_minute: str = arg()  # '' = unlimited
    requests: int = arg()  # requests to charge (0 with 0 units: only read)
    units: float = arg()


CALLS: tuple[type[Call], ...] = (
    Enqueue,
    Pick,
    Reclaim,
    Take,
    Renew,
    Emit,
    Complete,
    Release,
    Cancel,
    BatchRecord,
    BatchMove,
    Lease,
    RateLimit,
)


def prelude() -> str:
    """Lua constants and KEYS/ARGV positions generated from the classes above."""
    constants = {
        "GROUP": keys.GROUP,
        **{f"S_{status.name}": status.value for status in JobStatus},
        **COUNTERS,
    }
    lines = [f"local {name} = {json.dumps(value)}" for name, value in constants.items()]
    for table, (named, tail) in {"K": (_KEY, _KEY_TAIL), "A": (_ARG, _ARG_TAIL)}.items():
        entries = []
        for cls in CALLS:
            names = _fields(cls, named)
            pos = ", ".join(f"{n} = {i}" for i, n in enumerate(names, 1))
            sep = ", " if names else ""
            entries.append(f"  {cls.function} = {{{pos}{sep}tail = {len(names) + 1}}}")
            assert len(_fields(cls, tail)) <= 1, f"{cls.__name__}: one tail at most"
        lines.append(f"local {table} = {{\n" + ",\n".join(entries) + "\n}")
    return "\n".join(lines) + "\n"


def library() -> str:
    """The Lua library's source: its header line, the prelude, then the functions."""
    body = resources.files("queueing").joinpath("lua/inferq.lua").read_text()
    header, _, rest = body.partition("\n")
    return f"{header}\n{prelude()}{rest}"


# The preprocess tier: jobs with images wait in their partition's preprocess streams until
# a preprocess worker has prepared the images and hands them on to the model queue.


@dataclass(frozen=True)
class Prequeue(Call):
    """Store a job with images and queue it for the preprocess tier (``Enqueue``'s replies)."""

    function = "iq_prequeue"
    job: str = key()
    events: str = key()
    queue: str = key()  # the partition's preprocess stream of the job's class
    units: str = key()
    wake: str = key()
    idem: Sequence[str] = key_tail()
    job_id: str = arg()
    model: str = arg()
    cost: float = arg()
    ceiling: float = arg()
    idem_ttl: int = arg()
    fields: Sequence[str] = arg_tail()


@dataclass(frozen=True)
class PrePick(Call):
    """Deliver a partition's undelivered preprocess entries, best class first."""

    function = "iq_pre_pick"
    queues: Sequence[str] = key_tail()  # class order
    consumer: str = arg()
    max_count: int = arg()


@dataclass(frozen=True)
class PreTake(Take):
    """Hold delivered preprocess jobs (or drop, dead-letter them); return their hashes (the
    same keys and arguments as :class:`Take`; a failure is metered in the usage keys)."""

    function = "iq_pre_take"


@dataclass(frozen=True)
class PreFail(Call):
    """Fail a held preprocess job with the reason (a bad image)."""

    function = "iq_pre_fail"
    job: str = key()
    events: str = key()
    queue: str = key()
    units: str = key()
    channel: str = key()
    consumer: str = arg()
    entry: str = arg()
    job_id: str = arg()
    now: float = arg()
    ttl: int = arg()
    reason: str = arg()
    code: str = arg()  # '' or the error's code (invalid_image: the client's image is bad)
    usage: str = key()  # the partition's usage bucket and totals (a failure is metered)
    usage_total: str = key()
    usage_ttl: int = arg()


@dataclass(frozen=True)
class Handoff(Call):
    """Move a prepared job from its preprocess stream to its model queue, in one step."""

    function = "iq_handoff"
    job: str = key()
    events: str = key()
    pre: str = key()
    queue: str = key()  # the model queue's waiting set
    units: str = key()
    wake: str = key()
    fair: str = key()  # the partition's fair-sharing hash
    active: str = key()  # the job's class's active tenants
    order: str = key()  # the queue's arrival set
    images: Sequence[str] = key_tail()  # the prepared images' keys (their TTL is renewed)
    consumer: str = arg()
    entry: str = arg()
    job_id: str = arg()
    cost: float = arg()
    qfield: str = arg()
    ttl: int = arg()
    fields: Sequence[str] = arg_tail()  # field, value, ... (images, units, band, tokens)


CALLS += (Prequeue, PrePick, PreTake, PreFail, Handoff)
