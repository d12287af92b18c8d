"""Settings: one pydantic-settings class, env prefix ``INFERQ_``, sections nested with ``__``."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from queueing.keys import MAX_PARTITIONS


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

    ``unit_budget`` unset means: the budget ``inferq calibrate`` stored for ``replica``
    (this machine, by default). The hang watchdog: no engine step for longer than
    ``stall_s`` (or ``stall_pace_factor`` times the engine's recent step time, if longer)
    while it has work makes the worker stop claiming; ``hang_s`` without a step, a probe
    error, or (when another healthy worker serves the model) a probe unanswered for
    ``probe_timeout_s`` while stalled makes it give its jobs back and exit.
    """

    unit_budget: float | None = None
    replica: str = Field(default_factory=socket.gethostname)
    stall_s: float = 20.0
    stall_pace_factor: float = 5.0
    hang_s: float = 120.0
    probe_every_s: float = 5.0
    probe_timeout_s: float = 20.0
    block_ms: int = 1_000
    renew_every_ms: int = 10_000
    flush_ms: int = 30
    flush_tokens: int = 16
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0  # 0: any free port (the heartbeat entry says which)


class PreprocessSettings(BaseModel):
    """Image preparation: what is accepted (checked before decoding) and what is made of it.

    ``max_edge`` is the longest side a prepared image has (the model's processor size);
    ``processes`` unset means one per CPU the container really has.
    """

    formats: list[str] = Field(default_factory=lambda: ["JPEG", "PNG", "WEBP", "GIF"])
    max_bytes: Annotated[int, Field(ge=1)] = 20 * 1024 * 1024
    max_pixels: Annotated[int, Field(ge=1)] = 50_000_000
    max_edge: Annotated[int, Field(ge=16)] = 512
    output_format: Literal["JPEG", "PNG"] = "JPEG"
    jpeg_quality: Annotated[int, Field(ge=1, le=100)] = 90
    reducing_gap: Annotated[float, Field(ge=1.0)] = 2.0
    processes: Annotated[int, Field(ge=1)] | None = None


class Settings(BaseSettings):
    """All of inferq's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="INFERQ_", env_nested_delimiter="__", extra="ignore"
    )

    redis: RedisSettings = Field(default_factory=RedisSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    preprocess: PreprocessSettings = Field(default_factory=PreprocessSettings)
    # NoDecode: the environment's value reaches the validator as text, not JSON-decoded first.
    api_keys: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    models_dir: Path = Path.home() / ".cache" / "inferq" / "models"
    catalogue: Path | None = None
    default_model: str = "smollm2-135m-instruct"

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
