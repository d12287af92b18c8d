"""Settings read from the environment, as ``inferq`` reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from queueing.settings import Settings


def test_api_keys_in_the_key_tenant_form_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INFERQ_API_KEYS", "k1:alice, k2:bob")
    assert Settings().api_keys == {"k1": "alice", "k2": "bob"}


def test_api_keys_as_json_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERQ_API_KEYS", '{"k1": "alice"}')
    assert Settings().api_keys == {"k1": "alice"}


def test_a_malformed_api_key_entry_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERQ_API_KEYS", "k1:alice,k2")
    with pytest.raises(ValidationError, match="'k2' is not in the form key:tenant"):
        Settings()


def test_files_live_under_the_data_folder_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERQ_REDIS__DATA_DIR", "/srv/inferq")
    assert Settings().files_dir() == Path("/srv/inferq/files")
    monkeypatch.setenv("INFERQ_FILES__LOCAL_DIR", "/mnt/files")
    assert Settings().files_dir() == Path("/mnt/files")


def test_the_s3_file_backend_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERQ_FILES__BACKEND", "s3")
    with pytest.raises(ValidationError, match="s3_bucket"):
        Settings()
    monkeypatch.setenv("INFERQ_FILES__S3_BUCKET", "inferq-files")
    monkeypatch.setenv("INFERQ_FILES__S3_SECRET_ACCESS_KEY", "hush")
    files = Settings().files
    assert files.s3_bucket == "inferq-files" and files.s3_secret_access_key is not None
    assert files.s3_secret_access_key.get_secret_value() == "hush"
    assert "hush" not in repr(files)


def test_a_pool_whose_maximum_is_below_its_minimum_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INFERQ_POOLS", '{"p": {"min_replicas": 3, "max_replicas": 2}}')
    with pytest.raises(ValidationError, match="max_replicas 2 < min_replicas 3"):
        Settings()


def test_preprocess_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERQ_PREPROCESS__MAX_EDGE", "1024")
    monkeypatch.setenv("INFERQ_PREPROCESS__FORMATS", '["JPEG", "PNG"]')
    monkeypatch.setenv("INFERQ_PREPROCESS__PROCESSES", "3")
    settings = Settings().preprocess
    assert (settings.max_edge, settings.formats, settings.processes) == (1024, ["JPEG", "PNG"], 3)
    assert settings.max_pixels == 50_000_000 and settings.output_format == "JPEG"
    monkeypatch.setenv("INFERQ_PREPROCESS__OUTPUT_FORMAT", "BMP")
    with pytest.raises(ValidationError, match="output_format"):
        Settings()


def test_image_fetch_allowlist_matches_names_and_subdomains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INFERQ_PREPROCESS__FETCH__ENABLED", "true")
    monkeypatch.setenv(
        "INFERQ_PREPROCESS__FETCH__ALLOW_HOSTS", '["images.example.com", "*.cdn.net"]'
    )
    monkeypatch.setenv("INFERQ_PREPROCESS__FETCH__ALLOW_ADDRESSES", '["10.0.0.0/8"]')
    fetch = Settings().preprocess.fetch
    assert fetch.enabled and str(fetch.allow_addresses[0]) == "10.0.0.0/8"
    assert fetch.allows_host("Images.Example.COM.") and fetch.allows_host("a.b.cdn.net")
    assert not fetch.allows_host("cdn.net") and not fetch.allows_host("evil-cdn.net")
    assert not fetch.allows_host("example.com")


def test_tenant_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERQ_TENANTS__KEY_SECRET", "s3cret")
    monkeypatch.setenv("INFERQ_TENANTS__ADMIN_KEY", "adm")
    monkeypatch.setenv("INFERQ_TENANTS__CACHE_S", "2.5")
    monkeypatch.setenv("INFERQ_TENANTS__DEFAULT_LIMITS", '{"requests_per_minute": 60}')
    monkeypatch.setenv("INFERQ_QUEUE__USAGE_BUCKET_S", "600")
    settings = Settings()
    tenants = settings.tenants
    assert tenants.key_secret is not None and tenants.key_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings) and "adm'" not in repr(settings)
    assert tenants.cache_s == 2.5 and tenants.default_limits.requests_per_minute == 60
    assert settings.queue.usage_bucket_s == 600
