"""The Kubernetes actuator against a recorded API exchange (no API server runs here): its
requests are the recorded ones, and what they make is valid against the OpenAPI schema.
The RBAC manifest validates too."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import kubernetes_validate
import pytest
import yaml
from kubernetes import client

from autoscaler.kubernetes import KubernetesActuator, KubernetesError
from tests.workers.support import ROOT

EXCHANGE = json.loads((Path(__file__).parent / "k8s_exchange.json").read_text())["exchange"]
VERSION = kubernetes_validate.latest_version()


class Replay(BaseHTTPRequestHandler):
    """Answers each request with the recorded response for its method and path."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "body": body,
                "content_type": self.headers.get("Content-Type"),
            }
        )
        for step in EXCHANGE:
            asked = step["request"]
            if (asked["method"], asked["path"]) == (self.command, self.path):
                answer = json.dumps(step["response"]["body"]).encode()
                self.send_response(step["response"]["status"])
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                return
        self.send_error(500, "not in the recorded exchange")

    do_GET = do_PATCH = _answer

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def api() -> Iterator[client.AppsV1Api]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    Replay.seen = []
    with client.ApiClient(config) as api_client:
        yield client.AppsV1Api(api_client)
    server.shutdown()
    server.server_close()


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch: for Scale's scalar fields a strategic merge patch (what the client
    sends) does the same."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


async def test_scaling_sends_the_recorded_requests_and_valid_objects(
    api: client.AppsV1Api,
) -> None:
    actuator = KubernetesActuator(api, "inferq")
    assert await actuator.running("default") == 1
    await actuator.scale("default", 3, "up 1->3: test")

    assert len(Replay.seen) == 2
    patched = Replay.seen[1]
    for sent, step in zip(Replay.seen, EXCHANGE, strict=False):
        wanted = step["request"]
        assert (sent["method"], sent["path"]) == (wanted["method"], wanted["path"])
        assert sent["body"] == wanted.get("body")
    assert patched["content_type"] == EXCHANGE[1]["request"]["content_type"]
    # The patch applied to the object read is a valid Scale; so is every recorded answer.
    scale = merge_patch(EXCHANGE[0]["response"]["body"], patched["body"])
    assert scale["spec"]["replicas"] == 3
    kubernetes_validate.validate(scale, VERSION, strict=True)
    for step in EXCHANGE[:2]:
        kubernetes_validate.validate(step["response"]["body"], VERSION, strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):
        bad = merge_patch(scale, {"spec": {"replicas": "three"}})
        kubernetes_validate.validate(bad, VERSION, strict=True)


async def test_an_api_error_is_translated(api: client.AppsV1Api) -> None:
    with pytest.raises(KubernetesError, match=r"inferq-worker-gpu.*404"):
        await KubernetesActuator(api, "inferq").running("gpu")


def test_the_rbac_manifest_validates_and_grants_only_scale() -> None:
    documents = list(yaml.safe_load_all((ROOT / "deploy/k8s/rbac.yaml").read_text()))
    assert [d["kind"] for d in documents] == ["ServiceAccount", "Role", "RoleBinding"]
    for document in documents:
        kubernetes_validate.validate(document, VERSION, strict=True)
    [rule] = documents[1]["rules"]
    assert rule == {
        "apiGroups": ["apps"],
        "resources": ["deployments/scale"],
        "verbs": ["get", "patch"],
    }
