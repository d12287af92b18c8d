"""``inferq batch``: submit an OpenAI batch file, watch it with a progress bar, fetch results."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from queueing.settings import Settings

batch_app = typer.Typer(help="Offline batches over the OpenAI Batch API.")
console = Console()
_ENDED = {"completed", "failed", "expired", "cancelled"}

BaseUrl = typer.Option(None, "--base-url", help="The API (default: from the settings)")
ApiKey = typer.Option(None, "--api-key", envvar="INFERQ_API_KEY", help="An API key, if set")


def _client(base_url: str | None, api_key: str | None) -> httpx.Client:
    if base_url is None:
        settings = Settings()
        base_url = f"http://{settings.api.host}:{settings.api.port}"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=600.0)


def _checked(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json()
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text
    console.print(f"[red]{response.status_code}[/] {message}", soft_wrap=True)
    raise typer.Exit(1)


@batch_app.command("submit")
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A JSONL batch file")],
    endpoint: str = typer.Option("/v1/chat/completions", help="The lines' endpoint"),
    wait: bool = typer.Option(False, "--wait", help="Show progress until the batch ends"),
    base_url: str | None = BaseUrl,
    api_key: str | None = ApiKey,
) -> None:
    """Upload FILE and start a batch over it."""
    with _client(base_url, api_key) as http:
        with file.open("rb") as body:
            upload = _checked(
                http.post("/v1/files", files={"file": (file.name, body)}, data={"purpose": "batch"})
            )
        request = {"input_file_id": upload["id"], "endpoint": endpoint, "completion_window": "24h"}
        batch = _checked(http.post("/v1/batches", json=request))
        console.print(f"batch [bold]{batch['id']}[/] over {upload['id']} ({upload['bytes']} bytes)")
        if wait:
            batch = _watch(http, batch["id"])
            _summary(batch)
            if batch["status"] != "completed":
                raise typer.Exit(1)


def _watch(http: httpx.Client, batch_id: str, every_s: float = 1.0) -> dict[str, Any]:
    """Poll the batch with a progress bar: done / failed / total, tokens/s, ETA."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.fields[of]}"),
        TextColumn("[red]{task.fields[failed]} failed[/]"),
        TextColumn("{task.fields[rate]:.0f} tok/s"),
        TimeRemainingColumn(),
    )
    started, first_tokens = time.monotonic(), None
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("validating", total=None, of="?", failed=0, rate=0.0)
        while True:
            batch = _checked(http.get(f"/v1/batches/{batch_id}"))
            counts = batch["request_counts"]
            tokens = batch.get("usage", {}).get("output_tokens", 0)
            first_tokens = tokens if first_tokens is None else first_tokens
            elapsed = max(time.monotonic() - started, 1e-6)
            progress.update(
                task,
                description=batch["status"],
                total=counts["total"] or None,
                of=counts["total"] or "?",
                completed=counts["completed"] + counts["failed"],
                failed=counts["failed"],
                rate=(tokens - first_tokens) / elapsed,
            )
            if batch["status"] in _ENDED:
                return dict(batch)
            time.sleep(every_s)


def _summary(batch: dict[str, Any]) -> None:
    counts = batch["request_counts"]
    colour = "green" if batch["status"] == "completed" else "red"
    console.print(
        f"[{colour}]{batch['status']}[/]: {counts['completed']} completed, {counts['failed']} "
        f"failed of {counts['total']}; output {batch['output_file_id']}, "
        f"errors {batch['error_file_id']}"
    )
    for error in (batch.get("errors") or {}).get("data", []):
        console.print(f"  line {error.get('line')}: {error.get('code')}: {error.get('message')}")


@batch_app.command("status")
def status(
    batch_id: str,
    wait: bool = typer.Option(False, "--wait", help="Show progress until the batch ends"),
    base_url: str | None = BaseUrl,
    api_key: str | None = ApiKey,
) -> None:
    """Where a batch stands."""
    with _client(base_url, api_key) as http:
        batch = _watch(http, batch_id) if wait else _checked(http.get(f"/v1/batches/{batch_id}"))
    _summary(batch)


@batch_app.command("list")
def list_batches(
    limit: int = typer.Option(20, min=1, max=100),
    base_url: str | None = BaseUrl,
    api_key: str | None = ApiKey,
) -> None:
    """Your batches, newest first."""
    with _client(base_url, api_key) as http:
        page = _checked(http.get("/v1/batches", params={"limit": limit}))
    table = Table("id", "status", "completed", "failed", "total", "created")
    for batch in page["data"]:
        counts = batch["request_counts"]
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(batch["created_at"]))
        table.add_row(
            batch["id"],
            batch["status"],
            str(counts["completed"]),
            str(counts["failed"]),
            str(counts["total"]),
            created,
        )
    console.print(table)


@batch_app.command("cancel")
def cancel(batch_id: str, base_url: str | None = BaseUrl, api_key: str | None = ApiKey) -> None:
    """Cancel a batch: unfinished lines stop; finished ones stay in its output."""
    with _client(base_url, api_key) as http:
        batch = _checked(http.post(f"/v1/batches/{batch_id}/cancel"))
    console.print(f"batch {batch_id}: {batch['status']}")


@batch_app.command("download")
def download(
    batch_id: str,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Where (default: stdout)")
    ] = None,
    errors: bool = typer.Option(False, "--errors", help="The error file instead"),
    base_url: str | None = BaseUrl,
    api_key: str | None = ApiKey,
) -> None:
    """Fetch a batch's output (or error) file."""
    with _client(base_url, api_key) as http:
        batch = _checked(http.get(f"/v1/batches/{batch_id}"))
        file_id = batch["error_file_id" if errors else "output_file_id"]
        if file_id is None:
            console.print(f"batch {batch_id} ({batch['status']}) has no such file yet")
            raise typer.Exit(1)
        with http.stream("GET", f"/v1/files/{file_id}/content") as response:
            if not response.is_success:
                response.read()
                _checked(response)
            sink = output.open("wb") if output else os.fdopen(os.dup(1), "wb")
            with sink:
                for chunk in response.iter_bytes():
                    sink.write(chunk)
