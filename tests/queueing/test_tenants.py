"""Tenant records and changes (pure): key liveness, merges of limits and share, the views."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from queueing.tenancy import TenantLimits, TenantShare
from queueing.tenants import ApiKeyInfo, TenantCreate, TenantRecord, TenantUpdate, TenantView

NOW = 1_000.0


def tenant(**fields: object) -> TenantRecord:
    keys = [
        ApiKeyInfo(id="key_old", digest="d1", created_at=1.0, expires_at=NOW - 1),
        ApiKeyInfo(id="key_new", digest="d2", created_at=2.0),
    ]
    return TenantRecord.model_validate({"id": "t", "created_at": 1.0, "keys": keys, **fields})


def test_keys_live_until_their_grace_ends() -> None:
    record = tenant()
    assert record.key("d1", NOW) is None and record.key("d2", NOW) is not None
    assert [k.id for k in record.pruned(NOW).keys] == ["key_new"]


def test_the_view_hides_digests_and_fills_in_default_limits() -> None:
    defaults = TenantLimits(requests_per_minute=5)
    view = TenantView.of(tenant(), defaults)
    assert view.effective_limits == defaults and view.limits is None
    assert "d2" not in view.model_dump_json() and [k.id for k in view.keys] == ["key_new"]


def test_a_change_touches_only_what_it_names() -> None:
    defaults = TenantLimits(requests_per_minute=5, units_per_minute=50.0)
    record = tenant(share=TenantShare(weight=2, reserved={"m": 1.0}))
    assert TenantUpdate().apply(record, defaults) == record
    changed = TenantUpdate.model_validate(
        {"limits": {"max_queued_units": 9}, "share": {"reserved": {}}}
    ).apply(record, defaults)
    assert changed.limits == TenantLimits(
        requests_per_minute=5, units_per_minute=50.0, max_queued_units=9
    )
    assert changed.share == TenantShare(weight=2)


@pytest.mark.parametrize("bad", ["", "a b", "-x", "a/b", "x" * 65, "ü"])
def test_tenant_ids_are_short_and_plain(bad: str) -> None:
    with pytest.raises(ValidationError):
        TenantCreate(id=bad)


@pytest.mark.parametrize(
    "body",
    [
        {"share": {"weight": 1e400}},
        {"limits": {"units_per_minute": 1e999}},
        {"share": {"reserved": {"m": 1e400}}},
    ],
)
def test_infinite_figures_are_refused(body: dict[str, object]) -> None:
    """JSON has no infinity: stored, it would read back as null and break the record."""
    text = json.dumps(body).replace("Infinity", "1e400")
    with pytest.raises(ValidationError, match="finite"):
        TenantCreate.model_validate_json(text)
    with pytest.raises(ValidationError, match="finite"):
        TenantUpdate.model_validate_json(text)
