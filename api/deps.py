"""Request dependencies: the tenant behind the API key, and the app's shared objects."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Authenticator, Caller
from api.events import EventHub
from api.metrics import Metrics
from queueing.admission import Admission
from queueing.batches import Batches
from queueing.catalogue import Catalogue
from queueing.fallback import FallbackRouter
from queueing.files import Files
from queueing.jobstore import JobStore
from queueing.settings import Settings
from queueing.tenancy import TenantLimits

_bearer = HTTPBearer(auto_error=False, description="An API key (INFERQ_API_KEYS or a tenant's)")


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> JobStore:
    """The app's job store."""
    store: JobStore = request.app.state.store
    return store


def get_admission(request: Request) -> Admission:
    """The app's admission (tokenizers, cost model)."""
    admission: Admission = request.app.state.admission
    return admission


def get_catalogue(request: Request) -> Catalogue:
    """The app's model catalogue."""
    catalogue: Catalogue = request.app.state.catalogue
    return catalogue


def get_hub(request: Request) -> EventHub:
    """The app's event hub."""
    hub: EventHub = request.app.state.hub
    return hub


def get_metrics(request: Request) -> Metrics:
    """The app's metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


def get_batches(request: Request) -> Batches:
    """The app's batch records."""
    batches: Batches = request.app.state.batches
    return batches


def get_files(request: Request) -> Files:
    """The app's file service."""
    files: Files = request.app.state.files
    return files


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
AdmissionDep = Annotated[Admission, Depends(get_admission)]
CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
HubDep = Annotated[EventHub, Depends(get_hub)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
BatchesDep = Annotated[Batches, Depends(get_batches)]
FilesDep = Annotated[Files, Depends(get_files)]


async def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller behind the bearer key (see :mod:`api.auth` for the precedence)."""
    auth: Authenticator = request.app.state.auth
    return await auth.caller(credentials.credentials if credentials else None)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_tenant(caller: CallerDep) -> str:
    """The tenant owning the bearer key; every caller is ``local`` when no keys are set."""
    return caller.tenant


async def get_tenant_limits(caller: CallerDep, settings: SettingsDep) -> TenantLimits:
    """The caller's limits: its tenant's own, else the settings' defaults."""
    return caller.limits or settings.tenants.default_limits


TenantDep = Annotated[str, Depends(get_tenant)]
TenantLimitsDep = Annotated[TenantLimits, Depends(get_tenant_limits)]


def get_fallback(request: Request) -> FallbackRouter:
    """The app's fallback router (where new interactive jobs go)."""
    router: FallbackRouter = request.app.state.fallback
    return router


FallbackDep = Annotated[FallbackRouter, Depends(get_fallback)]
