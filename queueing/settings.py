"""Settings: one pydantic-settings class, env prefix ``INFERQ_``, sections nested with ``__``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from queueing.keys import MAX_PARTITIONS
from queueing.tenancy import TenantLimits


class RedisSettings(BaseModel):
    """Where the queue lives. No ``url`` means: run the embedded Valkey server."""

    url: str | None = None  # redis://, rediss://, unix://, or redis+cluster:// for a cluster
    embedded_port: int = 6399
    data_dir: Path = Path(".inferq")
    wait_aof: bool = True
    # Replicas a 202 waits for (WAITAOF numreplicas): None = one where the node has any.
    wait_replicas: int | None = None
    wait_replicas_timeout_ms: int = 2_000


class QueueSettings(BaseModel):
    """Partitions, delivery, retention and backpressure knobs."""

    partitions: Annotated[int, Field(ge=1, le=MAX_PARTITIONS)] = 1
    model_partitions: dict[str, Annotated[int, Field(ge=1, le=MAX_PARTITIONS)]] = Field(
        default_factory=dict
    )
    lease_ms: int = 10_000
    max_deliveries: int = 3
    result_ttl_s: int = 24 * 3600
    max_queued_units: float = 1_000_000.0
    ageing_ms: int = 5_000
    retry_after_s: int = 2
    output_share_alpha: float = 0.2
    output_share_cache_s: float = 5.0
    view_refresh_s: float = 5.0  # how often a worker re-reads every partition's head
    # A claim keeps taking from one partition while its jobs arrived no later than this after
    # the best job of another partition (same class and band): fewer round trips per job.
    claim_slack_ms: int = 50
    # Usage metering (README, "Tenants"): per-partition usage hashes, one per time bucket.
    usage_bucket_s: Annotated[int, Field(ge=60)] = 3_600
    usage_ttl_s: Annotated[int, Field(ge=60)] = 35 * 24 * 3600
    # Fair sharing (README, "Scheduling"): how often a worker re-reads the tenants' weights and
    # reservations, and how many seconds of its reserved rate a tenant's credit may bank.
    shares_refresh_s: float = Field(default=2.0, gt=0.0)
    reserve_burst_s: float = Field(default=5.0, gt=0.0)

    def partitions_of(self, model: str) -> int:
        """How many partitions ``model``'s queues are split into."""
        return self.model_partitions.get(model, self.partitions)

    @property
    def max_partitions(self) -> int:
        """The most partitions any model has (the channels an API process listens on)."""
        return max([self.partitions, *self.model_partitions.values()])


class ApiSettings(BaseModel):
    """The HTTP API: bind address, tenants, SSE."""

    host: str = "127.0.0.1"
    port: int = 8000
    sse_ping_s: float = 15.0
    max_body_bytes: int = 4 * 1024 * 1024


class WorkerSettings(BaseModel):
    """A worker's budget, loop timing and health checks.

    ``unit_budget`` unset means: the budget ``inferq calibrate`` stored for ``replica``, the
    replica type (calibration is keyed by type, not hostname: pods come and go). ``pool`` is
    the pool the worker belongs to (its heartbeat says so; the supervisor sets both).
    The hang watchdog: no engine step for longer than
    ``stall_s`` (or ``stall_pace_factor`` times the engine's recent step time, if longer)
    while it has work makes the worker stop claiming; ``hang_s`` without a step, a probe
    error, or (when another healthy worker serves the model) a probe unanswered for
    ``probe_timeout_s`` while stalled makes it give its jobs back and exit. ``inferq up``
    kills (and restarts) a worker whose heartbeat has been silent for ``hung_after_s`` while
    its process runs: a busy machine can delay a beat by seconds, a hung worker never beats.
    """

    unit_budget: float | None = None
    replica: str = "cpu"
    pool: str = "default"
    stall_s: float = 20.0
    stall_pace_factor: float = 5.0
    hang_s: float = 120.0
    probe_every_s: float = 5.0
    probe_timeout_s: float = 20.0
    hung_after_s: Annotated[float, Field(gt=0)] = 30.0
    block_ms: int = 1_000
    renew_every_ms: int = 10_000
    flush_ms: int = 30
    flush_tokens: int = 16
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0  # 0: any free port (the heartbeat entry says which)
    # Batch work (README, "Batch scheduling"): while work of a higher class waits or runs on
    # this worker (or did within ``batch_busy_hold_s``), batch jobs hold at most this share of
    # the unit budget and engine slots; when more than ``batch_preempt_units`` of higher-class
    # work waits, the newest batch jobs beyond the share are aborted and given back to the
    # queue (when ``batch_preempt`` is on).
    batch_share_when_busy: float = Field(default=0.02, ge=0.0, le=1.0)
    batch_busy_hold_s: float = Field(default=5.0, ge=0.0)
    batch_preempt: bool = True
    batch_preempt_units: float = Field(default=0.0, ge=0.0)


class BatchSettings(BaseModel):
    """Offline batches (the OpenAI Batch API), run by ``inferq arq``.

    ``arq_url`` is the server arq keeps its own job queue on; unset, the queue's server (which
    must then be a single server: arq speaks no Redis Cluster). A batch keeps at most
    ``max_outstanding`` of its lines queued or running, expanding more as they finish.
    """

    arq_url: str | None = None
    max_lines: Annotated[int, Field(ge=1)] = 1_000_000
    max_line_bytes: Annotated[int, Field(ge=1_024)] = 1024 * 1024
    chunk_lines: Annotated[int, Field(ge=1)] = 500
    max_outstanding: Annotated[int, Field(ge=1)] = 4_096
    poll_s: float = 0.5  # how often a running batch looks for finished lines
    slice_s: float = 30.0  # an arq job advances a batch this long, then hands it back
    lease_ms: int = 15_000  # a crashed arq worker's batch is taken over after this
    max_reported_errors: int = 100  # validation errors listed in a failed batch


class FileSettings(BaseModel):
    """Where uploaded files (batch inputs, batch outputs) are kept, and how large they may be.

    ``backend`` "local": under ``local_dir`` (unset: ``<redis.data_dir>/files``, next to the
    embedded server's data); "s3": an S3-compatible bucket, for deployments on several
    machines. Unset S3 keys fall back to the usual ``AWS_*`` environment variables.
    """

    backend: Literal["local", "s3"] = "local"
    local_dir: Path | None = None
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None  # unset: AWS; set for MinIO, Ceph, R2, ...
    s3_region: str | None = None
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    max_file_bytes: int = 512 * 1024 * 1024
    # Purposes a user may upload with; "batch_output" files are made by inferq only.
    purposes: tuple[str, ...] = ("batch", "vision", "user_data")

    @model_validator(mode="after")
    def _bucket_for_s3(self) -> FileSettings:
        if self.backend == "s3" and not self.s3_bucket:
            raise ValueError("files.s3_bucket (INFERQ_FILES__S3_BUCKET) is needed for backend s3")
        return self


class EngineSettings(BaseModel):
    """How a pool's workers start vLLM. float32 and eager suit vLLM-CPU; on a GPU use
    ``dtype="bfloat16"``, ``enforce_eager=False`` and a KV cache sized to the card.

    ``device``: ``auto`` is the platform vLLM finds; ``cuda:N[,M]`` pins the pool's workers to
    those GPUs (the supervisor sets ``CUDA_VISIBLE_DEVICES``).
    """

    dtype: str = "float32"  # bfloat16 on CPUs without native support garbles SmolLM2
    max_num_seqs: Annotated[int, Field(ge=1)] = 64
    kv_cache_bytes: Annotated[int, Field(ge=1 << 20)] = 1 << 30
    enforce_eager: bool = True
    max_model_len: Annotated[int, Field(ge=16)] | None = None  # None: the catalogue's context
    device: str = "auto"


class PoolSettings(BaseModel):
    """A worker pool: a model, its engine settings, and how many replicas may run.

    ``min_replicas`` 0 lets the autoscaler stop every worker after an idle period (the first
    request then waits in the queue while one starts). ``replica_type`` keys the calibration
    (capacity in units/s) and ``cost_per_replica_s`` its price, so that the cheaper type per
    unit of capacity fills first.
    """

    model: str | None = None  # None: the default model
    engine: EngineSettings = Field(default_factory=EngineSettings)
    min_replicas: Annotated[int, Field(ge=0)] = 1
    max_replicas: Annotated[int, Field(ge=0)] = 1
    replica_type: str = "cpu"
    cost_per_replica_s: Annotated[float, Field(gt=0)] = 1.0

    @model_validator(mode="after")
    def _bounds(self) -> PoolSettings:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas {self.max_replicas} < min_replicas {self.min_replicas}")
        return self


class AutoscalerSettings(BaseModel):
    """The autoscaler's loop, its policy knobs (see ``autoscaler.policy``) and its actuator."""

    interval_s: Annotated[float, Field(gt=0)] = 2.0
    target_utilisation: Annotated[float, Field(gt=0, le=1)] = 0.96
    drain_s: Annotated[float, Field(gt=0)] = 40.0  # drain a backlog within this
    startup_s: Annotated[float, Field(ge=0)] = 75.0  # a replica's start (vLLM-CPU here: ~75 s)
    scale_down_window_s: Annotated[float, Field(ge=0)] = 20.0
    idle_to_zero_s: Annotated[float, Field(ge=0)] = 120.0
    hysteresis: Annotated[float, Field(ge=0)] = 0.05
    predictive: bool = False
    default_capacity: Annotated[float, Field(gt=0)] = 1.0  # units/s of an uncalibrated type
    lease_ttl_s: Annotated[float, Field(gt=0)] = 5.0
    metrics_port: int = 0  # 0: any free port (the log says which)
    actuator: Literal["local", "kubernetes", "dry-run"] = "local"
    k8s_namespace: str = "default"
    k8s_deployment: str = "inferq-worker-{pool}"  # {pool}: the pool's name


class ImageFetchSettings(BaseModel):
    """Fetching http(s) image URLs (server-side request forgery: off unless turned on).

    Only hosts in ``allow_hosts`` (exact names or IP literals; ``*.example.com`` matches the
    subdomains of example.com) are fetched, and only when every address the host resolves to
    is public or inside ``allow_addresses`` (networks of a private image server, e.g. tests).
    Each redirect is checked again; ``max_bytes`` and ``timeout_s`` bound one whole fetch.
    """

    enabled: bool = False
    allow_hosts: list[str] = Field(default_factory=list)
    allow_addresses: list[IPvAnyNetwork] = Field(default_factory=list)
    max_bytes: Annotated[int, Field(ge=1)] = 20 * 1024 * 1024
    timeout_s: Annotated[float, Field(gt=0)] = 10.0
    max_redirects: Annotated[int, Field(ge=0)] = 3
    ca_file: Path | None = None  # CA certificates for https (unset: the system's)

    def allows_host(self, host: str) -> bool:
        """Whether ``host`` (a URL's host: a name or an IP literal) is on the allowlist."""
        host = host.strip("[]").rstrip(".").lower()
        for entry in (e.strip().rstrip(".").lower() for e in self.allow_hosts):
            if entry == host or (entry.startswith("*.") and host.endswith(entry[1:])):
                return True
        return False


class PreprocessSettings(BaseModel):
    """Image preparation: what is accepted (checked before decoding) and what is made of it.

    ``max_edge`` is the longest side a prepared image has (the model's processor size);
    ``processes`` unset means one per CPU the container really has; a worker holds up to
    ``jobs_per_process`` jobs per process, so one job's source is read and the next handed on
    while the pool decodes. ``max_images``: image parts one request may carry; ``fetch``:
    whether and where http(s) image URLs are fetched.
    """

    formats: list[str] = Field(default_factory=lambda: ["JPEG", "PNG", "WEBP", "GIF"])
    max_bytes: Annotated[int, Field(ge=1)] = 20 * 1024 * 1024
    max_pixels: Annotated[int, Field(ge=1)] = 50_000_000
    max_edge: Annotated[int, Field(ge=16)] = 512
    output_format: Literal["JPEG", "PNG"] = "JPEG"
    jpeg_quality: Annotated[int, Field(ge=1, le=100)] = 90
    reducing_gap: Annotated[float, Field(ge=1.0)] = 2.0
    processes: Annotated[int, Field(ge=1)] | None = None
    jobs_per_process: Annotated[int, Field(ge=1)] = 2
    max_images: Annotated[int, Field(ge=0)] = 8  # image parts in one request
    fetch: ImageFetchSettings = Field(default_factory=ImageFetchSettings)
    # The interpreter `inferq up` runs the preprocess worker with; unset: the sibling venv
    # `.venv-preprocess` (pillow-simd) when it exists, else the current interpreter.
    python: Path | None = None


class TenantSettings(BaseModel):
    """Tenants (README, "Tenants"): the registry's keys, its admin API, and default limits.

    ``key_secret`` keys the hash API keys are stored under; unset, the registry is off (only
    ``api_keys`` or the no-key local mode) and an ``admin_key`` is refused at start.
    ``admin_key`` unset: no ``/admin`` routes. ``cache_s``: how long an API process trusts a
    key lookup (revocation and disabling take effect within it).
    """

    default_limits: TenantLimits = Field(default_factory=TenantLimits)
    admin_key: SecretStr | None = None
    key_secret: SecretStr | None = None
    cache_s: Annotated[float, Field(ge=0)] = 5.0


class FallbackSettings(BaseModel):
    """CPU fallback (README, "CPU fallback"); a model uses it only if its catalogue entry
    names a ``fallback``. ``wait_s``: the queue-wait SLO of its interactive jobs where the
    entry sets no ``fallback_wait_s``; ``grace_s``: how long its pool, meant to run (not
    scaled to zero), may have no healthy worker before new interactive jobs go to the
    fallback; ``refresh_s``: how often an API process re-reads those signals."""

    wait_s: Annotated[float, Field(gt=0)] = 10.0
    grace_s: Annotated[float, Field(ge=0)] = 30.0
    refresh_s: Annotated[float, Field(gt=0)] = 1.0


class Settings(BaseSettings):
    """All of inferq's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="INFERQ_", env_nested_delimiter="__", extra="ignore"
    )

    redis: RedisSettings = Field(default_factory=RedisSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    files: FileSettings = Field(default_factory=FileSettings)
    pools: dict[str, PoolSettings] = Field(default_factory=lambda: {"default": PoolSettings()})
    autoscaler: AutoscalerSettings = Field(default_factory=AutoscalerSettings)
    preprocess: PreprocessSettings = Field(default_factory=PreprocessSettings)
    fallback: FallbackSettings = Field(default_factory=FallbackSettings)
    # NoDecode: the environment's value reaches the validator as text, not JSON-decoded first.
    api_keys: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    models_dir: Path = Path.home() / ".cache" / "inferq" / "models"
    catalogue: Path | None = None
    default_model: str = "smollm2-135m-instruct"
    tenants: TenantSettings = Field(default_factory=TenantSettings)

    def pool(self, name: str) -> PoolSettings:
        """The pool ``name`` (an unknown name: the default pool's settings)."""
        return self.pools.get(name) or PoolSettings()

    def pool_model(self, name: str) -> str:
        """The model the pool ``name`` serves."""
        return self.pool(name).model or self.default_model

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: Any) -> Any:
        """Accept ``key:tenant,key2:tenant2`` as well as a JSON object."""
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("{"):
            return json.loads(value)
        keys: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            key, sep, tenant = item.partition(":")
            if not (sep and key.strip() and tenant.strip()):
                raise ValueError(f"INFERQ_API_KEYS: {item!r} is not in the form key:tenant")
            keys[key.strip()] = tenant.strip()
        return keys

    def files_dir(self) -> Path:
        """The local backend's folder: ``files.local_dir``, else under the queue's data folder."""
        return self.files.local_dir or self.redis.data_dir / "files"

    def served_models(self) -> list[str]:
        """The models this deployment serves: those its pools run (a catalogue model no pool
        runs is not listed in ``/v1/models`` and does not hold back ``/readyz``)."""
        return sorted({self.pool_model(name) for name in self.pools})
