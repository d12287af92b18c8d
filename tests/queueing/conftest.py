"""Fixtures for queueing tests: file storage on each backend (a local folder, and a real
S3-protocol server: moto's server mode, in its own process, one per session)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from queueing.filestore import FileStorage, open_storage
from queueing.settings import FileSettings, Settings
from tests.conftest import free_port

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


def file_settings(backend: str, tmp_path: Path, s3_endpoint: str | None) -> Settings:
    """Settings whose files live in ``tmp_path`` or in a fresh bucket on ``s3_endpoint``."""
    if backend == "local":
        return Settings(files=FileSettings(local_dir=tmp_path / "files"))
    assert s3_endpoint is not None
    files = FileSettings(
        backend="s3",
        s3_bucket=new_bucket(s3_endpoint),
        s3_endpoint_url=s3_endpoint,
        s3_region="us-east-1",
        **S3_KEYS,  # type: ignore[arg-type]  # pydantic turns each str into a SecretStr
    )
    return Settings(files=files)


@pytest.fixture(params=["local", "s3"])
def storage_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for each file backend, empty."""
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    return file_settings(request.param, tmp_path, endpoint)


@pytest.fixture
def storage(storage_settings: Settings) -> FileStorage:
    """Each file backend, empty."""
    return open_storage(storage_settings)
