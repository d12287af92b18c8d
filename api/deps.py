"""Request dependencies: the tenant behind the API key, and the app's shared objects."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import Unauthorized
from api.events import EventHub
from api.metrics import Metrics
from queueing.admission import Admission
from queueing.batches import Batches
from queueing.catalogue import Catalogue
from queueing.fallback import FallbackRouter
from queueing.files import Files
from queueing.jobstore import JobStore
from queueing.settings import Settings

LOCAL_TENANT = "local"

_bearer = HTTPBearer(auto_error=False, description="An API key from INFERQ_API_KEYS")


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


def get_tenant(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The tenant owning the bearer key; every caller is ``local`` when no keys are set."""
    if not settings.api_keys:
        return LOCAL_TENANT
    if credentials is None:
        raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>'")
    token = credentials.credentials.encode()
    for key, tenant in settings.api_keys.items():
        if hmac.compare_digest(key.encode(), token):
            return tenant
    raise Unauthorized("Incorrect API key provided")


TenantDep = Annotated[str, Depends(get_tenant)]


def get_fallback(request: Request) -> FallbackRouter:
    """The app's fallback router (where new interactive jobs go)."""
    router: FallbackRouter = request.app.state.fallback
    return router


FallbackDep = Annotated[FallbackRouter, Depends(get_fallback)]
