"""Page routes of the tool screens: Voice, Planner and Bench (admins), and the admin's Models and Usage.
Like every page, each is the layout and its ES module; the module loads what it shows from the JSON APIs
(and the voice screen speaks over the /api/voice/stream WebSocket with the session cookie)."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import Response

from hearth.config import Settings
from hearth.web import session as web
from hearth.web.pages import admin_page, user_page
from hearth.web.render import page

router = APIRouter(include_in_schema=False)

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def deploy_blocker(settings: Settings) -> str | None:
    """Why the planner cannot deploy from this server, or None when a cluster is configured the way
    planner.deploy.api_client finds one: an API URL, a kubeconfig file, or the in-cluster service account."""
    if settings.planner_kube_api_url:
        return None
    if settings.planner_kubeconfig:
        if Path(settings.planner_kubeconfig).expanduser().is_file():
            return None
        return f"HEARTH_PLANNER_KUBECONFIG names {settings.planner_kubeconfig}, which does not exist."
    if os.environ.get("KUBERNETES_SERVICE_HOST") and IN_CLUSTER_TOKEN.is_file():
        return None
    default = os.environ.get("KUBECONFIG") or "~/.kube/config"
    if Path(default.split(os.pathsep)[0]).expanduser().is_file():
        return None
    return (
        "No Kubernetes cluster is configured: set HEARTH_PLANNER_KUBECONFIG (or "
        "HEARTH_PLANNER_KUBE_API_URL), or run Hearth inside the cluster. Download the manifests and apply "
        "them with kubectl instead."
    )


@router.get("/voice")
async def voice(request: Request) -> Response:
    return await user_page(request, "voice.html", "Voice")


@router.get("/planner")
async def planner(request: Request) -> Response:
    active = await web.current_session(request)
    if active is None:
        return web.to_login(request)
    blocker = deploy_blocker(request.app.state.platform.settings)
    if blocker is None and not active.principal.is_admin:
        blocker = "Deploying changes the cluster and the gateway's aliases: only an admin can deploy."
    return page(request, "planner.html", active=active, title="Planner", deploy_blocker=blocker or "")


@router.get("/bench")
async def bench(request: Request) -> Response:
    return await admin_page(request, "bench.html", "Bench")


@router.get("/admin/models")
async def admin_models(request: Request) -> Response:
    return await admin_page(request, "admin_models.html", "Models")


@router.get("/admin/usage")
async def admin_usage(request: Request) -> Response:
    return await admin_page(request, "admin_usage.html", "Usage")
