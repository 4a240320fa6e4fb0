"""How the tips context plugs into the platform (see hearth.platform.core): loads and validates the agent
registry (a bad manifest stops start-up), opens the token vault, builds the service, starts the scheduler,
provides `tips.ports.SERVICE` and `tips.ports.PRIVACY`, and registers the service as the tips context's
holder of personal data (export, erasure). Served tips go out through `notify.ports.NOTIFIER` when asked."""

from __future__ import annotations

from datetime import timedelta

from hearth.agents.ports import TOOLS
from hearth.notify.ports import NOTIFIER
from hearth.platform.core import Context, Platform
from hearth.tips import ports
from hearth.tips.api import router
from hearth.tips.feedback import FeedbackService
from hearth.tips.locks import AgentLocks
from hearth.tips.manifest import Registry
from hearth.tips.orchestrator import Orchestrator
from hearth.tips.precompute import Precompute
from hearth.tips.profile import ProfileService
from hearth.tips.retention import agent_runs_rule
from hearth.tips.scheduler import Scheduler
from hearth.tips.service import TipsService
from hearth.tips.sync import Connectors
from hearth.tips.tool import tips_next_tool
from hearth.tips.vault import Vault, load_key


async def start(platform: Platform) -> TipsService:
    settings = platform.settings
    registry = Registry.load(settings.tips_agent_dirs)
    db, bus = platform.db, platform.bus
    files_root = settings.tips_files_dir or settings.data_dir / "tips"
    files_root.mkdir(parents=True, exist_ok=True)
    vault = Vault(load_key(settings.data_dir, settings.secret_key))
    profile = ProfileService(db, bus, registry)
    connectors = Connectors(
        db,
        bus,
        vault,
        registry,
        todoist_url=settings.tips_todoist_url,
        files_root=files_root,
        interval=timedelta(minutes=settings.tips_sync_minutes),
        backoff=timedelta(seconds=settings.tips_retry_seconds),
        max_backoff=timedelta(hours=6),
        http_backoff=settings.tips_http_backoff_seconds,
    )
    precompute = Precompute(db, bus, registry, AgentLocks(db))
    await precompute.drop_stale_versions()
    orchestrator = Orchestrator(
        db,
        bus,
        platform.gateway,
        registry,
        precompute,
        profile,
        alias=settings.tips_model,
        judge_alias=settings.tips_judge_model,
        tip_ttl=timedelta(minutes=settings.tips_tip_ttl_minutes),
    )
    service = TipsService(
        db=db,
        registry=registry,
        profile=profile,
        connectors=connectors,
        precompute=precompute,
        orchestrator=orchestrator,
        feedback=FeedbackService(db, bus, registry, connectors),
        scheduler=Scheduler(connectors, precompute, tick_seconds=settings.tips_tick_seconds),
        notifier=platform.ports.find(NOTIFIER),
    )
    service.scheduler.start()
    platform.ports.provide(ports.SERVICE, service)
    platform.ports.provide(ports.PRIVACY, service)
    platform.personal_data.register(service, context="tips")
    if settings.tips_runs_retention_days > 0:
        platform.retention.register(agent_runs_rule(db, settings.tips_runs_retention_days))
    if (tools := platform.ports.find(TOOLS)) is not None:
        # The model call inside can take a while on the embedded model: the tool's limit is the agents'
        # model timeout, not the default tool timeout.
        tools.register(tips_next_tool(service, timeout=settings.agents_model_timeout))
    return service


async def stop(service: TipsService) -> None:
    await service.scheduler.stop()


CONTEXT = Context(name="tips", start=start, stop=stop, routers=(router,))
