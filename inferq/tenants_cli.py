"""``inferq tenants``: create and change tenants, their keys and limits; read their usage.

It talks to the API's admin routes (``/admin``, with ``INFERQ_TENANTS__ADMIN_KEY``), like
``inferq batch`` talks to ``/v1``: one implementation of the checks (reservations against
capacity, ids taken by the settings), and no Redis credentials on the operator's machine.
"""

from __future__ import annotations

import json
import time
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from inferq.batch_cli import BaseUrl, _checked, _client
from queueing.settings import Settings

tenants_app = typer.Typer(help="Tenants: API keys, limits, shares and usage (the admin API).")
console = Console()

AdminKey = typer.Option(
    None, "--admin-key", envvar="INFERQ_TENANTS__ADMIN_KEY", help="The admin key"
)
Rpm = typer.Option(None, "--rpm", min=1, help="Requests per minute")
Upm = typer.Option(None, "--units-per-minute", min=0.001, help="Model units per minute")
MaxQueued = typer.Option(None, "--max-queued-units", min=0.001, help="Cap on queued units")
Weight = typer.Option(None, "--weight", min=0.001, help="Weight in fair sharing")
Reserve = typer.Option(
    None, "--reserve", help="MODEL=UNITS_PER_S reserved (repeat for more models)"
)


def _admin_key(admin_key: str | None) -> str:
    key = admin_key or Settings().tenants.admin_key
    if key is None:
        console.print("[red]no admin key[/]: pass --admin-key or set INFERQ_TENANTS__ADMIN_KEY")
        raise typer.Exit(2)
    return key if isinstance(key, str) else key.get_secret_value()


def _reserved(items: list[str] | None) -> dict[str, float] | None:
    if items is None:
        return None
    reserved: dict[str, float] = {}
    for item in items:
        model, _, units = item.partition("=")
        try:
            value = float(units)
        except ValueError:
            value = None
        if not model.strip() or value is None:
            console.print(f"[red]--reserve {item!r}[/]: give MODEL=UNITS_PER_S")
            raise typer.Exit(2)
        reserved[model.strip()] = value
    return reserved


def _limits(rpm: int | None, upm: float | None, queued: float | None) -> dict[str, Any]:
    given = {"requests_per_minute": rpm, "units_per_minute": upm, "max_queued_units": queued}
    return {name: value for name, value in given.items() if value is not None}


def _show(tenant: dict[str, Any]) -> None:
    limits = tenant["effective_limits"]
    own = "" if tenant["limits"] else " (defaults)"
    state = "[red]disabled[/]" if tenant["disabled"] else "[green]enabled[/]"
    console.print(f"tenant [bold]{tenant['id']}[/] {tenant['name']} {state}")
    console.print(f"  limits{own}: {json.dumps(limits)}")
    console.print(f"  share: {json.dumps(tenant['share'])}")
    for key in tenant["keys"]:
        until = key["expires_at"]
        note = f" (valid until {time.strftime('%H:%M:%S', time.localtime(until))})" if until else ""
        console.print(f"  key {key['id']}{note}")


def _issued(issued: dict[str, Any]) -> None:
    _show(issued["tenant"])
    console.print(f"API key {issued['id']} (shown once, store it now):")
    console.print(issued["api_key"], soft_wrap=True, highlight=False)


@tenants_app.command("create")
def create(
    tenant_id: str | None = typer.Argument(None, help="The id (default: a generated one)"),
    name: str = typer.Option("", help="A display name"),
    rpm: int | None = Rpm,
    units_per_minute: float | None = Upm,
    max_queued_units: float | None = MaxQueued,
    weight: float | None = Weight,
    reserve: list[str] | None = Reserve,
    base_url: str | None = BaseUrl,
    admin_key: str | None = AdminKey,
) -> None:
    """A new tenant and its first API key (printed once)."""
    limits = _limits(rpm, units_per_minute, max_queued_units)
    share: dict[str, Any] = {"reserved": _reserved(reserve) or {}}
    if weight is not None:
        share["weight"] = weight
    body = {"id": tenant_id, "name": name, "limits": limits or None, "share": share}
    with _client(base_url, _admin_key(admin_key)) as http:
        _issued(_checked(http.post("/admin/tenants", json=body)))


@tenants_app.command("list")
def list_tenants(base_url: str | None = BaseUrl, admin_key: str | None = AdminKey) -> None:
    """Every tenant, with its limits, share and keys."""
    with _client(base_url, _admin_key(admin_key)) as http:
        page = _checked(http.get("/admin/tenants"))
    table = Table("id", "name", "state", "rpm", "units/min", "weight", "reserved", "keys")
    for t in page["data"]:
        limits = t["effective_limits"]
        table.add_row(
            t["id"],
            t["name"],
            "disabled" if t["disabled"] else "enabled",
            str(limits["requests_per_minute"] or "-"),
            str(limits["units_per_minute"] or "-"),
            f"{t['share']['weight']:g}",
            ", ".join(f"{m}={u:g}" for m, u in t["share"]["reserved"].items()) or "-",
            str(len(t["keys"])),
        )
    console.print(table)


@tenants_app.command("show")
def show(tenant_id: str, base_url: str | None = BaseUrl, admin_key: str | None = AdminKey) -> None:
    """One tenant."""
    with _client(base_url, _admin_key(admin_key)) as http:
        _show(_checked(http.get(f"/admin/tenants/{tenant_id}")))


@tenants_app.command("set")
def set_tenant(
    tenant_id: str,
    name: str | None = typer.Option(None, help="A display name"),
    rpm: int | None = Rpm,
    units_per_minute: float | None = Upm,
    max_queued_units: float | None = MaxQueued,
    default_limits: bool = typer.Option(False, "--default-limits", help="Use the defaults"),
    weight: float | None = Weight,
    reserve: list[str] | None = Reserve,
    no_reservations: bool = typer.Option(False, "--no-reservations", help="Drop them all"),
    disabled: bool | None = typer.Option(None, "--disable/--enable", help="Refuse its keys"),
    base_url: str | None = BaseUrl,
    admin_key: str | None = AdminKey,
) -> None:
    """Change a tenant: only what is given changes."""
    body: dict[str, Any] = {"name": name, "disabled": disabled}
    body = {k: v for k, v in body.items() if v is not None}
    limits = _limits(rpm, units_per_minute, max_queued_units)
    if default_limits:
        body["limits"] = None
    elif limits:
        body["limits"] = limits
    share: dict[str, Any] = {"weight": weight, "reserved": {} if no_reservations else None}
    if reserve is not None:
        share["reserved"] = _reserved(reserve)
    if any(v is not None for v in share.values()):
        body["share"] = {k: v for k, v in share.items() if v is not None}
    with _client(base_url, _admin_key(admin_key)) as http:
        _show(_checked(http.patch(f"/admin/tenants/{tenant_id}", json=body)))


@tenants_app.command("rotate-key")
def rotate_key(
    tenant_id: str,
    grace_s: float = typer.Option(0.0, "--grace-s", min=0, help="Old keys stay valid this long"),
    base_url: str | None = BaseUrl,
    admin_key: str | None = AdminKey,
) -> None:
    """A new API key (printed once); the old ones stop at once, or after --grace-s."""
    with _client(base_url, _admin_key(admin_key)) as http:
        body = {"grace_s": grace_s}
        _issued(_checked(http.post(f"/admin/tenants/{tenant_id}/keys", json=body)))


@tenants_app.command("revoke")
def revoke(
    tenant_id: str,
    key_id: str,
    base_url: str | None = BaseUrl,
    admin_key: str | None = AdminKey,
) -> None:
    """Revoke one API key at once (its id: from `inferq tenants show`)."""
    with _client(base_url, _admin_key(admin_key)) as http:
        _show(_checked(http.delete(f"/admin/tenants/{tenant_id}/keys/{key_id}")))


@tenants_app.command("usage")
def usage(
    tenant: str | None = typer.Option(None, help="One tenant (default: all)"),
    since: str = typer.Option("24h", help="Epoch seconds, or back from now: 90m, 24h, 7d"),
    as_json: bool = typer.Option(False, "--json", help="Print the answer as JSON"),
    base_url: str | None = BaseUrl,
    admin_key: str | None = AdminKey,
) -> None:
    """Units, tokens and requests by outcome per tenant and model."""
    params = {"since": since, **({"tenant": tenant} if tenant else {})}
    with _client(base_url, _admin_key(admin_key)) as http:
        answer = _checked(http.get("/admin/usage", params=params))
    if as_json:
        typer.echo(json.dumps(answer))
        return
    table = Table(
        "tenant", "model", "units", "prompt tok", "completion tok", "ok", "failed", "cancelled"
    )
    for row in answer["data"]:
        requests = row["requests"]
        table.add_row(
            row["tenant"],
            row["model"],
            f"{row['units']:.2f}",
            str(row["prompt_tokens"]),
            str(row["completion_tokens"]),
            str(requests["succeeded"]),
            str(requests["failed"]),
            str(requests["cancelled"]),
        )
    console.print(table)
