"""Deploy a plan option to Kubernetes and route to it through Hearth's gateway.

Applies the manifests with the official `kubernetes` client by server-side apply (PATCH with
`application/apply-patch+yaml`, field manager "hearth-planner", force), polls the InferenceService's status
until it is Ready (`deploying` then routes a gateway alias to its URL, so test prompts and traffic go through
Hearth: auth, rate limits, metrics).

No Kubernetes API server can run on the machines Hearth is developed and tested on: the tests run this code
against a loopback HTTP server that records the requests the real client sends and answers like the API
server would. That is the edge of what is tested; against a real cluster, KServe, the GPU operator and
prometheus-adapter (for the HPA's metric) must be installed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("hearth.planner")

FIELD_MANAGER = "hearth-planner"
APPLY = "application/apply-patch+yaml"
KSERVE = ("serving.kserve.io", "v1beta1", "inferenceservices")


def api_client(*, kubeconfig: str | None = None, context: str | None = None, host: str | None = None) -> Any:
    """A kubernetes ApiClient: in-cluster service account, else kubeconfig; `host` targets a given server."""
    from kubernetes import client, config

    if host:
        configuration = client.Configuration()
        configuration.host = host
        return client.ApiClient(configuration)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig, context=context)
    return client.ApiClient()


def apply(api: Any, manifests: list[dict[str, Any]]) -> list[str]:
    """Server-side apply each manifest; returns 'Kind/name' of each."""
    from kubernetes import client

    applied = []
    for m in manifests:
        name, namespace = m["metadata"]["name"], m["metadata"].get("namespace", "default")
        kind = m["kind"]
        if m["apiVersion"] == "serving.kserve.io/v1beta1" and kind == "InferenceService":
            client.CustomObjectsApi(api).patch_namespaced_custom_object(
                *KSERVE[:2],
                namespace,
                KSERVE[2],
                name,
                m,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type=APPLY,
            )
        elif m["apiVersion"] == "autoscaling/v2" and kind == "HorizontalPodAutoscaler":
            client.AutoscalingV2Api(api).patch_namespaced_horizontal_pod_autoscaler(
                name,
                namespace,
                m,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type=APPLY,
            )
        else:
            raise ValueError(f"cannot apply {m['apiVersion']} {kind}")
        applied.append(f"{kind}/{name}")
    return applied


def inference_service_status(api: Any, name: str, namespace: str) -> tuple[bool, str | None]:
    """(Ready, URL) from the InferenceService's status."""
    from kubernetes import client

    obj = client.CustomObjectsApi(api).get_namespaced_custom_object_status(
        *KSERVE[:2], namespace, KSERVE[2], name
    )
    status = (obj or {}).get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return ready, status.get("url") or (status.get("address") or {}).get("url")


def wait_ready(
    api: Any, name: str, namespace: str, *, timeout_s: float, interval_s: float = 5.0
) -> tuple[bool, str | None]:
    """Poll the status until Ready or the timeout."""
    deadline = time.monotonic() + timeout_s
    ready, url = inference_service_status(api, name, namespace)
    while not ready and time.monotonic() < deadline:
        time.sleep(min(interval_s, max(0.0, deadline - time.monotonic())))
        ready, url = inference_service_status(api, name, namespace)
    return ready, url


def alias_config(*, alias: str, base_url: str, model: str) -> dict[str, Any]:
    """The hearth.yaml snippet that keeps the alias across restarts."""
    backend = f"planner-{alias}"
    return {
        "backends": {backend: {"type": "openai", "base_url": base_url}},
        "aliases": {alias: {"kind": "chat", "deployments": [{"backend": backend, "model": model}]}},
    }
