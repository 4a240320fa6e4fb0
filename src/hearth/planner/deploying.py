"""The deploy flow: apply a plan option's manifests, wait until Ready, route a gateway alias to the endpoint
(through the gateway's `AliasRegistry` port) and announce it with `PlanDeployed`."""

from __future__ import annotations

import asyncio

from hearth.config import Settings
from hearth.events.bus import EventBus
from hearth.gateway.ports import AliasRegistry
from hearth.planner import deploy as k8s
from hearth.planner.events import PlanDeployed
from hearth.planner.schemas import DeployRequest, DeployResponse, ManifestResponse
from hearth.platform.errors import HearthError


def _alias_exists(alias: str) -> HearthError:
    return HearthError(409, f"alias {alias!r} already exists", param="alias", code="alias_exists")


def openai_base_url(url: str) -> str:
    """The endpoint's OpenAI API root (KServe reports the service root; vLLM serves under /v1)."""
    root = url.rstrip("/")
    return root if root.endswith("/v1") else root + "/v1"


async def deploy(
    *,
    request: DeployRequest,
    built: ManifestResponse,
    settings: Settings,
    aliases: AliasRegistry | None,
    bus: EventBus,
) -> DeployResponse:
    """Server-side apply `built`, poll for Ready, and register `request.alias` when Ready with a URL."""
    if aliases is not None and aliases.has_alias(request.alias):
        raise _alias_exists(request.alias)
    try:
        api = k8s.api_client(
            kubeconfig=settings.planner_kubeconfig,
            context=settings.planner_kube_context,
            host=settings.planner_kube_api_url,
        )
        applied = await asyncio.to_thread(k8s.apply, api, built.manifests)
        ready, url = await asyncio.to_thread(
            k8s.wait_ready,
            api,
            built.name,
            built.namespace,
            timeout_s=request.timeout_s,
            interval_s=settings.planner_poll_seconds,
        )
    except Exception as exc:  # the cluster's answer, whatever client error it came as
        raise HearthError(502, f"Kubernetes API: {exc}", code="kubernetes_error") from None
    url = request.endpoint or url
    registered = False
    if ready and url and aliases is not None:
        try:
            await aliases.add_alias(
                request.alias,
                base_url=openai_base_url(url),
                model=built.name,
                kind="chat",
                description=f"deployed by the planner: {built.name}",
            )
        except ValueError:  # taken while the deployment was becoming Ready
            raise _alias_exists(request.alias) from None
        registered = True
    await bus.publish(
        PlanDeployed(
            name=built.name,
            namespace=built.namespace,
            model_id=request.option.model_id,
            gpu=request.option.gpu,
            replicas=request.option.replicas,
            url=url,
            ready=ready,
            alias=request.alias if registered else None,
        )
    )
    return DeployResponse(
        name=built.name,
        namespace=built.namespace,
        applied=applied,
        ready=ready,
        url=url,
        alias=request.alias,
        registered=registered,
    )
