"""Fixtures for queueing tests: file storage on each backend (a local folder, and a bucket
on the session's real S3-protocol server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from queueing.filestore import FileStorage, open_storage
from queueing.settings import Settings
from tests.conftest import file_settings


@pytest.fixture(params=["local", "s3"])
def storage_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for each file backend, empty."""
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    return Settings(files=file_settings(request.param, tmp_path, endpoint))


@pytest.fixture
def storage(storage_settings: Settings) -> FileStorage:
    """Each file backend, empty."""
    return open_storage(storage_settings)
