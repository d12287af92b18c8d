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


def test_a_pool_whose_maximum_is_below_its_minimum_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INFERQ_POOLS", '{"p": {"min_replicas": 3, "max_replicas": 2}}')
    with pytest.raises(ValidationError, match="max_replicas 2 < min_replicas 3"):
        Settings()
