"""Shared fixtures: one embedded Valkey server per test session, flushed between tests, and
real local Valkey clusters (one per session; one with replicas per test that kills nodes).

``queue_url`` runs a test against each queue backend: the single server and the cluster.
Tests that need the single server itself take ``valkey``. ``s3_endpoint`` is a real
S3-protocol server (moto's server mode, in its own process) for the file storage.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from queueing.catalogue import Catalogue, ModelSpec
from queueing.cluster import EmbeddedCluster, range_is_free
from queueing.connection import Client, connect
from queueing.server import EmbeddedValkey, port_is_free
from queueing.settings import FileSettings, QueueSettings, Settings

PARTITIONS = 4  # the partitions of every model in tests: claims cross partitions everywhere


def free_port(start: int = 16400) -> int:
    """A loopback port nothing listens on."""
    return next(p for p in range(start, start + 500) if port_is_free("127.0.0.1", p))


def free_port_range(count: int, start: int) -> int:
    """A base port with ``count`` free consecutive loopback ports (and their cluster bus ports)."""
    bases = range(start, start + 2000, count)
    return next(p for p in bases if range_is_free("127.0.0.1", p, count))


@pytest.fixture(scope="session")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedValkey]:
    """The session's embedded server."""
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    """The session's 3-primary cluster without replicas (ready in about 2 s)."""
    with EmbeddedCluster(tmp_path_factory.mktemp("cluster"), free_port_range(3, 17700)) as cluster:
        yield cluster


@pytest.fixture
def valkey_cluster_with_replicas(tmp_path: Path) -> Iterator[EmbeddedCluster]:
    """A fresh cluster of 3 primaries with one replica each, for a test that kills nodes."""
    base = free_port_range(6, 18200)
    with EmbeddedCluster(tmp_path / "cluster", base, replicas=1) as cluster:
        yield cluster
    gc.collect()  # what clients of the killed nodes left behind is reported in this test


@pytest.fixture(params=["single", "cluster"])
def queue_url(request: pytest.FixtureRequest) -> str:
    """The URL of a queue backend: the single server, or the 3-primary cluster."""
    name = "valkey" if request.param == "single" else "valkey_cluster"
    server: EmbeddedValkey | EmbeddedCluster = request.getfixturevalue(name)
    return server.url


@pytest.fixture
async def redis_client(queue_url: str) -> AsyncIterator[Client]:
    """A client on a freshly flushed server (FLUSHALL keeps the loaded functions)."""
    client = await connect(queue_url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Default settings (models under the setup step's cache folder)."""
    return Settings()


@pytest.fixture(scope="session")
def catalogue(settings: Settings) -> Catalogue:
    """The packaged catalogue; fails clearly when the model was never prepared."""
    cat = Catalogue.load(settings.models_dir, settings.catalogue)
    spec = cat.get(settings.default_model)
    if not (spec.path / "tokenizer.json").exists():
        pytest.fail(f"{spec.path} is not prepared: run `make setup` (inferq model prepare)")
    return cat


@pytest.fixture(scope="session")
def spec(catalogue: Catalogue, settings: Settings) -> ModelSpec:
    """The default model."""
    return catalogue.get(settings.default_model)


@pytest.fixture
def queue_settings() -> QueueSettings:
    """Short leases and ageing so delivery tests run in seconds."""
    return QueueSettings(
        lease_ms=800, max_deliveries=3, ageing_ms=200, result_ttl_s=600, partitions=PARTITIONS
    )


S3_KEYS = {"s3_access_key_id": "test-key", "s3_secret_access_key": "test-secret"}


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on a free loopback port; yields its URL."""
    port = free_port(19300)
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "moto's server exited at startup"
            try:
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "moto's server did not start"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def new_bucket(endpoint: str) -> str:
    """A fresh bucket on the S3 server (moto accepts unsigned requests)."""
    name = f"files-{time.monotonic_ns()}"
    httpx.put(f"{endpoint}/{name}").raise_for_status()
    return name


def file_settings(backend: str, tmp_path: Path, s3_endpoint: str | None) -> FileSettings:
    """Files kept under ``tmp_path`` or in a fresh bucket on ``s3_endpoint``."""
    if backend == "local":
        return FileSettings(local_dir=tmp_path / "files")
    assert s3_endpoint is not None
    return FileSettings(
        backend="s3",
        s3_bucket=new_bucket(s3_endpoint),
        s3_endpoint_url=s3_endpoint,
        s3_region="us-east-1",
        **S3_KEYS,  # type: ignore[arg-type]  # pydantic turns each str into a SecretStr
    )


VLM = "tiny-vlm-idefics3"  # the catalogue's vision model (`inferq model prepare --tiny-vlm`)


@pytest.fixture(scope="session")
def vlm(catalogue: Catalogue) -> ModelSpec:
    """The tiny vision-language model's entry; fails clearly when it was never built."""
    spec = catalogue.get(VLM)
    if not (spec.path / "tokenizer.json").exists():
        pytest.fail(f"{spec.path} is not prepared: run `make setup` (inferq model prepare)")
    return spec
