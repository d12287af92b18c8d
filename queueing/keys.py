"""Every Redis key name inferq uses, in one place.

Keys of one job share the hash tag ``{id}``; keys of one model's queues share ``{model}``.
"""

from __future__ import annotations

from enum import StrEnum

PREFIX = "iq"
GROUP = "workers"
DEAD = f"{PREFIX}:dead"
WORKERS = f"{PREFIX}:workers"
API_PROCESSES = f"{PREFIX}:apis"
CANCEL_CHANNEL = f"{PREFIX}:cancel"
EVENTS_CHANNEL = f"{PREFIX}:evn"
LUA_LIBRARY = "inferq"

# Lua derives per-job keys from ids with these templates (``%s`` is the job id).
JOB_TEMPLATE = f"{PREFIX}:job:{{%s}}"
EVENTS_TEMPLATE = f"{PREFIX}:ev:{{%s}}"


class JobClass(StrEnum):
    """Priority class of a job, highest first."""

    INTERACTIVE = "interactive"
    STANDARD = "standard"
    BATCH = "batch"

    @property
    def rank(self) -> int:
        """0 for the most urgent class."""
        return list(JobClass).index(self)


def job(job_id: str) -> str:
    """The job's hash."""
    return JOB_TEMPLATE % job_id


def events(job_id: str) -> str:
    """The job's event stream."""
    return EVENTS_TEMPLATE % job_id


def queue(model: str, job_class: JobClass, band: int) -> str:
    """The runnable-work stream of one model, class and cost band."""
    return f"{PREFIX}:q:{{{model}}}:{job_class.value}:{band}"


def preprocess_queue(job_class: JobClass) -> str:
    """The stream of jobs that need image preparation first."""
    return f"{PREFIX}:pre:{job_class.value}"


def units(model: str) -> str:
    """Hash of one model's unit counters: queued, inflight, per-queue units and counts."""
    return f"{PREFIX}:units:{{{model}}}"


def output_shares(model: str) -> str:
    """Hash of tenant -> moving average of the share of ``max_tokens`` their jobs used."""
    return f"{PREFIX}:outshare:{{{model}}}"


def capacity(model: str) -> str:
    """Hash of replica -> its calibration (capacity in units/s, in-flight budget), as JSON."""
    return f"{PREFIX}:capacity:{{{model}}}"


def wake(model: str) -> str:
    """List a worker blocks on while the model's queues are empty."""
    return f"{PREFIX}:wake:{{{model}}}"


def heartbeat(worker: str) -> str:
    """Key with a TTL that says the worker is alive."""
    return f"{PREFIX}:hb:{worker}"


def api_heartbeat(api: str) -> str:
    """Key with a TTL that says the API process ``api`` is alive."""
    return f"{PREFIX}:api:{api}"


def idempotency(tenant: str, key: str) -> str:
    """Maps a tenant's idempotency key to the job it created."""
    return f"{PREFIX}:idem:{tenant}:{key}"


def queue_field(job_class: JobClass, band: int) -> str:
    """Field suffix of one queue inside the model's units hash."""
    return f"{job_class.value}:{band}"
