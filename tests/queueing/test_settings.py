"""Settings read from the environment, as ``inferq`` reads them."""

from __future__ import annotations

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
