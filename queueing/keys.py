"""Every Redis key name inferq uses, in one place.

The queue is partitioned like a Kafka topic: each model's work is spread over P partitions,
and every key one atomic step touches carries its partition's hash tag ``{T}`` (one slot), so
the queue runs on Redis/Valkey Cluster and one model can use every primary. A job id names
its partition (``job_<p>_<hex>``), so every key of a job follows from its id alone.
Registries off the hot path (workers, API processes, heartbeats) share one tag of their own.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from enum import StrEnum

from queueing.partition_tags import TAGS

PREFIX = "iq"
GROUP = "workers"
MAX_PARTITIONS = len(TAGS)
_REGISTRY = f"{PREFIX}:{{reg}}"
WORKERS = f"{_REGISTRY}:workers"
API_PROCESSES = f"{_REGISTRY}:apis"
ACTIVE_BATCHES = f"{_REGISTRY}:batches"  # set: ids of batches not yet ended
POOLS = f"{_REGISTRY}:pools"  # hash: pool -> the autoscaler's last decision (JSON)
POOLS_RUNNING = f"{_REGISTRY}:pools:running"  # hash: pool -> replicas its actuator runs (JSON)
AUTOSCALER_LEASE = f"{_REGISTRY}:autoscaler"  # the active autoscaler's name, with a TTL
TENANT_SHARES = f"{_REGISTRY}:tenant-shares"  # hash: tenant -> its TenantShare (JSON)
TENANTS = f"{_REGISTRY}:tenants"  # hash: tenant id -> its TenantRecord (JSON)
TENANT_KEYS = f"{_REGISTRY}:tenant-keys"  # hash: keyed digest of an API key -> tenant id
_JOB_ID_PREFIX = "job_"
_BATCH_ID_PREFIX = "batch_"


class InvalidJobId(ValueError):
    """The string is not a job id of this keyspace."""


class JobClass(StrEnum):
    """Priority class of a job, highest first."""

    INTERACTIVE = "interactive"
    STANDARD = "standard"
    BATCH = "batch"

    @property
    def rank(self) -> int:
        """0 for the most urgent class."""
        return list(JobClass).index(self)


def tag(partition: int) -> str:
    """The hash tag of ``partition`` (braces included)."""
    if not 0 <= partition < MAX_PARTITIONS:
        raise ValueError(f"partition {partition} is outside 0..{MAX_PARTITIONS - 1}")
    return f"{{{TAGS[partition]}}}"


def new_job_id(partition: int) -> str:
    """A fresh, unguessable job id that names its partition."""
    tag(partition)  # validates the range
    return f"{_JOB_ID_PREFIX}{partition}_{secrets.token_hex(16)}"


def partition_of(job_id: str) -> int:
    """The partition a job id names; raises :class:`InvalidJobId` for anything else."""
    head, _, rest = job_id.removeprefix(_JOB_ID_PREFIX).partition("_")
    if not job_id.startswith(_JOB_ID_PREFIX) or not head.isdigit() or not rest.isalnum():
        raise InvalidJobId(f"'{job_id}' is not a job id")
    partition = int(head)
    if partition >= MAX_PARTITIONS:
        raise InvalidJobId(f"'{job_id}' is not a job id")
    return partition


def job(job_id: str) -> str:
    """The job's hash."""
    return f"{PREFIX}:job:{tag(partition_of(job_id))}:{job_id}"


def events(job_id: str) -> str:
    """The job's event stream."""
    return f"{PREFIX}:ev:{tag(partition_of(job_id))}:{job_id}"


def queue(model: str, partition: int, job_class: JobClass, band: int) -> str:
    """The runnable-work stream of one model, partition, class and cost band."""
    return f"{PREFIX}:q:{tag(partition)}:{model}:{job_class.value}:{band}"


def units(model: str, partition: int) -> str:
    """Hash of one partition's unit counters: queued, inflight, per-queue units and counts."""
    return f"{PREFIX}:units:{tag(partition)}:{model}"


def output_shares(model: str, partition: int) -> str:
    """Hash of tenant -> moving average of the share of ``max_tokens`` their jobs used."""
    return f"{PREFIX}:outshare:{tag(partition)}:{model}"


def dead(partition: int) -> str:
    """The partition's dead-letter stream."""
    return f"{PREFIX}:dead:{tag(partition)}"


def idempotency(partition: int, tenant: str, key: str) -> str:
    """Maps a tenant's idempotency key to the job it created (in the key's partition)."""
    return f"{PREFIX}:idem:{tag(partition)}:{tenant}:{key}"


def events_channel(partition: int) -> str:
    """Sharded channel: ids of the partition's jobs that have new events."""
    return f"{PREFIX}:evn:{tag(partition)}"


def cancel_channel(partition: int) -> str:
    """Sharded channel: ids of the partition's running jobs asked to cancel."""
    return f"{PREFIX}:cancel:{tag(partition)}"


def wake_channel(model: str, partition: int) -> str:
    """Sharded channel: ``class:band`` of each job that becomes runnable in the partition."""
    return f"{PREFIX}:wake:{tag(partition)}:{model}"


def capacity(model: str) -> str:
    """Hash of replica -> its calibration (capacity in units/s, in-flight budget), as JSON."""
    return f"{PREFIX}:capacity:{{{model}}}"


def heartbeat(worker: str) -> str:
    """Key with a TTL that says the worker is alive."""
    return f"{_REGISTRY}:hb:{worker}"


def api_heartbeat(api: str) -> str:
    """Key with a TTL that says the API process ``api`` is alive."""
    return f"{_REGISTRY}:api:{api}"


def queue_field(job_class: JobClass, band: int) -> str:
    """Field suffix of one queue inside a partition's units hash."""
    return f"{job_class.value}:{band}"


def new_batch_id() -> str:
    """A fresh, unguessable batch id."""
    return f"{_BATCH_ID_PREFIX}{secrets.token_hex(16)}"


def is_batch_id(batch_id: str) -> bool:
    """True for a string in the form :func:`new_batch_id` makes."""
    rest = batch_id.removeprefix(_BATCH_ID_PREFIX)
    return batch_id.startswith(_BATCH_ID_PREFIX) and len(rest) == 32 and rest.isalnum()


def line_job_id(batch_id: str, line: int, partitions: int) -> str:
    """The job id of a batch's ``line``: the same on every expansion, so a replay is a no-op.

    Lines are spread over the model's ``partitions`` round robin from a batch's own start.
    """
    partition = (zlib.crc32(batch_id.encode()) + line) % partitions
    digest = hashlib.sha256(f"{batch_id}:{line}".encode()).hexdigest()[:32]
    return f"{_JOB_ID_PREFIX}{partition}_{digest}"


def batch(batch_id: str) -> str:
    """The batch's hash: status, timestamps, counts, progress (one tag per batch)."""
    return f"{PREFIX}:batch:{{{batch_id}}}"


def batch_written(batch_id: str) -> str:
    """Bitmap: bit ``line`` set once the line's outcome is recorded."""
    return f"{PREFIX}:batch:{{{batch_id}}}:written"


def batch_outputs(batch_id: str) -> str:
    """List of the batch's output lines (successes), in the order they finished."""
    return f"{PREFIX}:batch:{{{batch_id}}}:out"


def batch_errors(batch_id: str) -> str:
    """List of the batch's error lines, in the order they finished."""
    return f"{PREFIX}:batch:{{{batch_id}}}:err"


def batch_custom_ids(batch_id: str) -> str:
    """Set of ``custom_id`` values seen while validating (duplicates are refused)."""
    return f"{PREFIX}:batch:{{{batch_id}}}:ids"


def batch_lease(batch_id: str) -> str:
    """Who advances the batch now (a token with a TTL)."""
    return f"{PREFIX}:batch:{{{batch_id}}}:lease"


def batch_launch(batch_id: str) -> str:
    """Set while an arq job to advance the batch is queued and not yet started (a TTL)."""
    return f"{PREFIX}:batch:{{{batch_id}}}:launch"


def tenant_batches(tenant: str) -> str:
    """Sorted set of a tenant's batch ids by creation time."""
    return f"{PREFIX}:batches:{{t:{tenant}}}"


def _tenant_files_tag(tenant: str) -> str:
    """The hash tag shared by one tenant's file records and indexes (a digest: any name fits)."""
    return "{f:" + hashlib.sha256(tenant.encode()).hexdigest()[:16] + "}"


def file_record(tenant: str, file_id: str) -> str:
    """Hash of one uploaded (or batch-made) file's metadata."""
    return f"{PREFIX}:file:{_tenant_files_tag(tenant)}:{file_id}"


def file_index(tenant: str, purpose: str | None = None) -> str:
    """Sorted set of a tenant's file ids by creation time (or of one purpose's files)."""
    index = f"{PREFIX}:files:{_tenant_files_tag(tenant)}"
    return f"{index}:{purpose}" if purpose else index


def prequeue(model: str, partition: int, job_class: JobClass) -> str:
    """The stream of one model's jobs, in one partition and class, that wait for image
    preparation (the preprocess tier hands each on to its model queue)."""
    return f"{PREFIX}:pre:{tag(partition)}:{model}:{job_class.value}"


def prewake_channel(partition: int) -> str:
    """Sharded channel: the model of each job that enters the partition's preprocess streams."""
    return f"{PREFIX}:prewake:{tag(partition)}"


def prepared_image(partition: int, digest: str) -> str:
    """A prepared image's bytes, in the partition of the jobs that use it, by content hash."""
    return f"{PREFIX}:img:{tag(partition)}:{digest}"


def usage(partition: int, bucket: int) -> str:
    """Hash of the partition's usage in one time bucket: ``tenant|model|metric`` -> amount."""
    return f"{PREFIX}:usage:{tag(partition)}:{bucket}"


def usage_total(partition: int) -> str:
    """Hash of the partition's usage since it began (what the metrics count)."""
    return f"{PREFIX}:usage:{tag(partition)}:total"


def rate_limit(tenant: str) -> str:
    """Hash of one tenant's token buckets (requests and units per minute): one slot each."""
    digest = hashlib.sha256(tenant.encode()).hexdigest()[:16]  # any tenant name fits a tag
    return f"{PREFIX}:rl:{{r:{digest}}}"


def waiting(model: str, partition: int, job_class: JobClass, band: int) -> str:
    """Sorted set of one queue's waiting jobs, every tenant's (members ordered by tenant, then
    arrival; see ``wait_job`` in the Lua library). A claimed job moves to :func:`queue`."""
    return f"{PREFIX}:w:{tag(partition)}:{model}:{job_class.value}:{band}"


def arrivals(model: str, partition: int, job_class: JobClass, band: int) -> str:
    """Sorted set of the same waiting jobs by arrival: the queue's oldest job comes first."""
    return f"{PREFIX}:wa:{tag(partition)}:{model}:{job_class.value}:{band}"


def fair(model: str, partition: int) -> str:
    """Hash of the partition's fair-sharing state: per class and tenant its virtual counter
    and waiting jobs, per tenant its reservation credit."""
    return f"{PREFIX}:fair:{tag(partition)}:{model}"


def active(model: str, partition: int, job_class: JobClass) -> str:
    """Sorted set of the tenants with waiting jobs of ``job_class``, by virtual counter."""
    return f"{PREFIX}:act:{tag(partition)}:{model}:{job_class.value}"
