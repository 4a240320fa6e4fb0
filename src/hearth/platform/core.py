"""The platform: the shared parts every context is built on, and the contract by which a context plugs in.

A context package has a `wiring.py` exposing `CONTEXT`: its routes, and how to start and stop it. `start`
receives the `Platform`, builds the context's service from the shared parts and from other contexts' ports
(`platform.ports.require(...)`), provides its own ports, and returns the service; `stop` receives it back.
Contexts start in the order of `CONTEXT_MODULES` (a context may require only ports of earlier ones) and stop
in reverse. Contexts meet through ports or events, never through each other's tables or services.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter

from hearth.auth.personal_data import AuthPersonalData
from hearth.auth.ports import USERS
from hearth.auth.ratelimit import RateLimiter
from hearth.auth.service import AuthService
from hearth.auth.shared_limits import SharedRateLimiter
from hearth.config import Settings
from hearth.events.bus import EventBus
from hearth.events.personal_data import OutboxPersonalData
from hearth.events.retention import outbox_rule
from hearth.gateway.personal_data import GatewayPersonalData
from hearth.gateway.ports import ALIASES
from hearth.gateway.service import Gateway
from hearth.platform.db import Database
from hearth.platform.kit.leases import Leases
from hearth.platform.middleware import flush_access_log
from hearth.platform.migrate import upgrade
from hearth.platform.personal_data import PersonalDataRegistry
from hearth.platform.ports import Ports
from hearth.platform.retention import RetentionSweeper
from hearth.platform.shared import SharedState

CONTEXT_MODULES = (
    "hearth.gateway.wiring",  # first: the model changes admins stored apply before any context calls a model
    "hearth.rag.wiring",
    "hearth.chat.wiring",
    "hearth.voice.wiring",
    "hearth.planner.wiring",
    "hearth.bench.wiring",
    "hearth.agents.wiring",  # after rag and planner: its tools use their ports
    "hearth.workflows.wiring",
    "hearth.usage.wiring",
    "hearth.audit.wiring",
    "hearth.notify.wiring",
    "hearth.tips.wiring",
    "hearth.privacy.wiring",  # after every context that registers personal data
    "hearth.web.wiring",  # last: its pages use the services of the contexts above
)


async def _no_stop(service: Any) -> None:
    return None


@dataclass(frozen=True)
class Context:
    name: str
    start: Callable[[Platform], Awaitable[Any]]  # provides the context's ports; returns what `stop` receives
    stop: Callable[[Any], Awaitable[None]] = _no_stop
    routers: tuple[APIRouter, ...] = field(default_factory=tuple)


def load_contexts() -> list[Context]:
    return [importlib.import_module(name).CONTEXT for name in CONTEXT_MODULES]


@dataclass
class Platform:
    """The shared parts, built once per process and reached by routes via `request.app.state.platform`."""

    settings: Settings
    db: Database
    bus: EventBus
    auth: AuthService
    ratelimits: RateLimiter | SharedRateLimiter
    gateway: Gateway
    retention: RetentionSweeper
    shared: SharedState | None = None  # Redis, when HEARTH_REDIS_URL is set: limits and key revocations
    ports: Ports = field(default_factory=Ports)
    # Who holds what about a user (export, erasure): contexts register in their wiring.
    personal_data: PersonalDataRegistry = field(default_factory=PersonalDataRegistry)
    running: list[tuple[Context, Any]] = field(default_factory=list)  # started contexts and their services
    # Set on SIGTERM (cli/serve.py): /readyz answers 503 so load balancers stop sending requests here.
    draining: bool = False


async def build_platform(settings: Settings, contexts: list[Context] | None = None) -> Platform:
    """Migrate, build the shared parts, then start `contexts` in order."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    bus = EventBus(db, nats_url=settings.nats_url, prefix=settings.nats_prefix)
    auth = AuthService(db, bus=bus, cache_seconds=settings.auth_cache_seconds)
    ratelimits: RateLimiter | SharedRateLimiter = RateLimiter(
        default_rpm=settings.default_rpm, default_tpm=settings.default_tpm
    )
    shared = None
    if settings.redis_url:
        # Replicas share rate-limit buckets and hear about revoked keys (docs/scale-out.md).
        shared = SharedState(settings.redis_url, prefix=settings.redis_prefix)
        ratelimits = SharedRateLimiter(shared, ratelimits)
        auth.share_invalidations(shared)
    gateway = Gateway(
        settings.models, llm_threads=settings.llm_threads, bus=bus, request_events=settings.gateway_events
    )
    await gateway.start()
    platform = Platform(
        settings=settings,
        db=db,
        bus=bus,
        auth=auth,
        ratelimits=ratelimits,
        gateway=gateway,
        retention=RetentionSweeper(interval_seconds=settings.retention_sweep_seconds, leases=Leases(db)),
        shared=shared,
    )
    _provide_shared_ports(platform)
    if settings.events_retention_days > 0:
        platform.retention.register(outbox_rule(db, settings.events_retention_days))
    for context in contexts or []:
        platform.running.append((context, await context.start(platform)))
    # After the contexts: in-process delivery hands a row only to the handlers subscribed at that moment,
    # so events left in the outbox by the last run must wait until every consumer has subscribed.
    await bus.start()
    platform.retention.start()
    return platform


def _provide_shared_ports(platform: Platform) -> None:
    platform.ports.provide(USERS, platform.auth)
    platform.ports.provide(ALIASES, platform.gateway)
    platform.personal_data.register(GatewayPersonalData(platform.gateway))
    # Erased after every context, in this order: the outbox (scrubs the events the contexts' erasures
    # published; looks the username up), then the user row itself.
    platform.personal_data.register(
        OutboxPersonalData(platform.db, platform.auth, platform.bus.relay), last=True
    )
    platform.personal_data.register(
        AuthPersonalData(platform.auth, data_dir=platform.settings.data_dir), last=True
    )


async def close_platform(platform: Platform) -> None:
    await platform.retention.stop()
    for context, service in reversed(platform.running):
        await context.stop(service)
    await platform.gateway.close()
    await platform.auth.drain()
    await platform.ratelimits.close()
    if platform.shared is not None:
        await platform.shared.close()
    flush_access_log()
    await platform.bus.stop()
    await platform.db.close()
