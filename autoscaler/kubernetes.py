"""The Kubernetes actuator: each pool is a Deployment; scaling patches its ``scale``
subresource (``deploy/k8s/rbac.yaml`` grants exactly that) with the official client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class KubernetesError(RuntimeError):
    """The API server refused or could not be reached."""


class KubernetesActuator:
    """``apps/v1`` Deployments named by ``deployment`` (``{pool}`` is the pool's name)."""

    def __init__(self, apps: Any, namespace: str, deployment: str = "inferq-worker-{pool}") -> None:
        self.apps = apps  # kubernetes.client.AppsV1Api
        self.namespace = namespace
        self.deployment = deployment

    @classmethod
    def from_environment(cls, namespace: str, deployment: str) -> KubernetesActuator:
        """In a pod: its service account; elsewhere: the kubeconfig."""
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        return cls(client.AppsV1Api(), namespace, deployment)

    def _name(self, pool: str) -> str:
        return self.deployment.format(pool=pool)

    async def running(self, pool: str) -> int:
        read = self.apps.read_namespaced_deployment_scale
        scale = await self._call(read, self._name(pool), self.namespace)
        return int(scale.spec.replicas or 0)

    async def scale(self, pool: str, replicas: int, reason: str) -> None:
        body = {"spec": {"replicas": replicas}}
        patch = self.apps.patch_namespaced_deployment_scale
        await self._call(patch, self._name(pool), self.namespace, body)
        log.info("deployment %s scaled to %d (%s)", self._name(pool), replicas, reason)

    async def _call(self, method: Callable[..., Any], name: str, *args: Any) -> Any:
        """The client's call in a thread; its errors translated here, at the boundary."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return await asyncio.to_thread(method, name, *args)
        except (ApiException, HTTPError) as exc:
            raise KubernetesError(f"{method.__name__} {name} in {self.namespace}: {exc}") from exc
