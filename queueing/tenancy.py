"""What a tenant may use: its limits, and its place in fair sharing between tenants."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class TenantLimits(BaseModel):
    """A tenant's rate limits and queue cap; ``None`` means unlimited."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # JSON has no inf

    requests_per_minute: Annotated[int, Field(gt=0)] | None = None
    units_per_minute: Annotated[float, Field(gt=0)] | None = None
    max_queued_units: Annotated[float, Field(gt=0)] | None = None


class TenantShare(BaseModel):
    """A tenant's weight between the tenants of a class, and its reserved units/s per model."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # JSON has no inf

    weight: Annotated[float, Field(gt=0)] = 1.0
    reserved: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
