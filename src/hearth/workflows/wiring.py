"""How the workflows context plugs into the platform (see hearth.platform.core).

It requires no port at start-up: the built-in pipelines' steps look up the ports they use (rag's
`RetrievalEvaluator`, the planner's `BenchmarkSink`) when they run, so a server without those contexts
still runs other pipelines. It starts the local executor unless `HEARTH_WORKFLOWS_EXECUTOR=false`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hearth.platform.core import Context, Platform
from hearth.workflows import ports
from hearth.workflows.api import router
from hearth.workflows.argo import ArgoSubmitter
from hearth.workflows.artifacts import store_from_settings
from hearth.workflows.engine import Engine
from hearth.workflows.executor import LocalExecutor
from hearth.workflows.personal_data import WorkflowsPersonalData
from hearth.workflows.registry import load_pipelines
from hearth.workflows.runner import StepRunner
from hearth.workflows.service import WorkflowService


@dataclass
class Running:
    service: WorkflowService
    executor: LocalExecutor | None


def argo_configured(settings: object) -> bool:
    return bool(
        getattr(settings, "argo_kube_api_url", None)
        or getattr(settings, "argo_kubeconfig", None)
        or os.environ.get("KUBERNETES_SERVICE_HOST")
    )


async def start(platform: Platform) -> Running:
    settings = platform.settings
    engine = Engine(platform.db, platform.bus, synchronous_commit=settings.workflows_synchronous_commit)
    store = store_from_settings(settings)
    executor = None
    if settings.workflows_executor:
        executor = LocalExecutor(
            engine=engine,
            runner=StepRunner(
                store=store, workdir=settings.data_dir / "workflows" / "work", ports=platform.ports
            ),
            concurrency=settings.workflows_concurrency,
            poll_seconds=settings.workflows_poll_seconds,
            heartbeat_seconds=settings.workflows_heartbeat_seconds,
            stale_seconds=settings.workflows_stale_seconds,
        )
    service = WorkflowService(
        db=platform.db,
        bus=platform.bus,
        engine=engine,
        store=store,
        pipelines=load_pipelines(settings.workflows_modules),
        on_created=executor.wake if executor else None,
        argo=ArgoSubmitter.from_settings(settings) if argo_configured(settings) else None,
        file_roots=[Path(p.strip()) for p in settings.workflows_file_roots.split(",") if p.strip()],
    )
    await service.register()
    platform.ports.provide(ports.SERVICE, service)
    platform.personal_data.register(WorkflowsPersonalData(platform.db, store))
    if executor is not None:
        await executor.start()
    return Running(service, executor)


async def stop(running: Running) -> None:
    if running.executor is not None:
        await running.executor.stop()


CONTEXT = Context(name="workflows", start=start, stop=stop, routers=(router,))
