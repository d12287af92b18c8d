"""Tenants as the registry stores them: limits, share, keys (by digest), and how they change.

``queueing.tenant_registry`` keeps them in Redis; this module is the pure half: the records,
the admin API's request bodies, and the errors.
"""

from __future__ import annotations

import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from queueing.errors import InferqError
from queueing.tenancy import TenantLimits, TenantShare

TENANT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
TenantId = Annotated[str, Field(pattern=TENANT_ID)]


class TenantNotFound(InferqError):
    """No tenant of that id in the registry."""

    status = 404
    code = "tenant_not_found"
    kind = "invalid_request_error"


class TenantExists(InferqError):
    """A tenant of that id exists already (or the id is taken by the settings)."""

    status = 409
    code = "tenant_exists"
    kind = "invalid_request_error"


class KeyNotFound(InferqError):
    """The tenant has no live API key of that id."""

    status = 404
    code = "api_key_not_found"
    kind = "invalid_request_error"


class ReservationRefused(InferqError):
    """A reservation beyond what the model's pools can serve (or that no calibration backs)."""

    status = 409
    code = "reservation_exceeds_capacity"
    kind = "invalid_request_error"


class ApiKeyInfo(BaseModel):
    """One API key of a tenant: its public id and its keyed digest (never the key)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    digest: str
    created_at: float
    expires_at: float | None = None  # set by a rotation with a grace period

    def live(self, now: float) -> bool:
        """False once its grace period after a rotation has passed."""
        return self.expires_at is None or self.expires_at > now


class KeyView(BaseModel):
    """An API key as the admin API shows it: no digest."""

    id: str
    created_at: float
    expires_at: float | None = None


class TenantRecord(BaseModel):
    """A tenant. ``limits`` None: the settings' default limits."""

    model_config = ConfigDict(extra="forbid")

    id: TenantId
    name: str = ""
    limits: TenantLimits | None = None
    share: TenantShare = Field(default_factory=TenantShare)
    disabled: bool = False
    created_at: float
    keys: list[ApiKeyInfo] = Field(default_factory=list)

    def key(self, digest: str, now: float) -> ApiKeyInfo | None:
        """The live key of this digest, if any."""
        return next((k for k in self.keys if k.digest == digest and k.live(now)), None)

    def pruned(self, now: float) -> TenantRecord:
        """The record without the keys whose grace period has passed."""
        return self.model_copy(update={"keys": [k for k in self.keys if k.live(now)]})


class TenantView(BaseModel):
    """A tenant as the admin API shows it."""

    id: str
    object: str = "tenant"
    name: str
    limits: TenantLimits | None
    effective_limits: TenantLimits
    share: TenantShare
    disabled: bool
    created_at: float
    keys: list[KeyView]

    @classmethod
    def of(cls, record: TenantRecord, defaults: TenantLimits) -> TenantView:
        """The view of ``record``; its limits are ``defaults`` where it has none."""
        now = time.time()
        return cls(
            id=record.id,
            name=record.name,
            limits=record.limits,
            effective_limits=record.limits or defaults,
            share=record.share,
            disabled=record.disabled,
            created_at=record.created_at,
            keys=[KeyView(**k.model_dump(exclude={"digest"})) for k in record.keys if k.live(now)],
        )


class TenantCreate(BaseModel):
    """Body of ``POST /admin/tenants``: an id (else one is made), and optional settings."""

    model_config = ConfigDict(extra="forbid")

    id: TenantId | None = None
    name: Annotated[str, Field(max_length=200)] = ""
    limits: TenantLimits | None = None
    share: TenantShare = Field(default_factory=TenantShare)


class SharePatch(BaseModel):
    """A change of share: the weight, and/or the whole map of reservations."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    weight: Annotated[float, Field(gt=0)] | None = None
    reserved: dict[str, Annotated[float, Field(gt=0)]] | None = None


class TenantUpdate(BaseModel):
    """Body of ``PATCH /admin/tenants/{id}``: only the fields given change.

    ``limits`` given: its fields replace those of the tenant's limits (or of the defaults,
    if it had none); ``"limits": null`` goes back to the settings' defaults.
    """

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(max_length=200)] | None = None
    limits: TenantLimits | None = None
    share: SharePatch | None = None
    disabled: bool | None = None

    def apply(self, record: TenantRecord, defaults: TenantLimits) -> TenantRecord:
        """``record`` with this change."""
        update: dict[str, object] = {}
        if self.name is not None:
            update["name"] = self.name
        if self.disabled is not None:
            update["disabled"] = self.disabled
        if "limits" in self.model_fields_set:
            given = self.limits.model_dump(exclude_unset=True) if self.limits else None
            base = record.limits or defaults
            update["limits"] = None if given is None else base.model_copy(update=given)
        if self.share is not None:
            update["share"] = record.share.model_copy(
                update=self.share.model_dump(exclude_none=True)
            )
        return record.model_copy(update=update)


class RotateKey(BaseModel):
    """Body of ``POST /admin/tenants/{id}/keys``: how long the old keys stay valid."""

    model_config = ConfigDict(extra="forbid")

    grace_s: Annotated[float, Field(ge=0, le=30 * 24 * 3600)] = 0.0


class IssuedKey(BaseModel):
    """A new API key, shown this once."""

    object: str = "api_key"
    id: str
    api_key: str
    tenant: TenantView
