"""The FastAPI application: builds the platform's parts at start-up and mounts every context's routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from hearth.auth.ratelimit import RateLimiter
from hearth.auth.service import AuthService
from hearth.config import Settings
from hearth.events.bus import EventBus
from hearth.gateway.service import Gateway
from hearth.platform.contexts import Context, load_contexts
from hearth.platform.db import Database
from hearth.platform.errors import install_error_handlers
from hearth.platform.logging import configure_logging
from hearth.platform.middleware import RequestContextMiddleware, flush_access_log
from hearth.platform.migrate import upgrade
from hearth.platform.retention import RetentionSweeper

log = logging.getLogger("hearth")


@dataclass
class Platform:
    """Everything a route may need, built once per process and reached via `request.app.state.platform`."""

    settings: Settings
    db: Database
    bus: EventBus
    auth: AuthService
    ratelimits: RateLimiter
    gateway: Gateway
    retention: RetentionSweeper
    contexts: list[Context] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)  # each context's service, by context name


async def build_platform(settings: Settings, contexts: list[Context] | None = None) -> Platform:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    bus = EventBus(db, nats_url=settings.nats_url, prefix=settings.nats_prefix)
    auth = AuthService(db, cache_seconds=settings.auth_cache_seconds)
    ratelimits = RateLimiter(default_rpm=settings.default_rpm, default_tpm=settings.default_tpm)
    gateway = Gateway(
        settings.models, llm_threads=settings.llm_threads, bus=bus if settings.gateway_events else None
    )
    await bus.start()
    await gateway.start()
    platform = Platform(
        settings=settings,
        db=db,
        bus=bus,
        auth=auth,
        ratelimits=ratelimits,
        gateway=gateway,
        retention=RetentionSweeper(interval_seconds=settings.retention_sweep_seconds),
    )
    for context in contexts or []:
        platform.services[context.name] = await context.start(platform)
        platform.contexts.append(context)
    platform.retention.start()
    return platform


async def close_platform(platform: Platform) -> None:
    await platform.retention.stop()
    for context in reversed(platform.contexts):
        await context.stop(platform.services[context.name])
    await platform.gateway.close()
    await platform.auth.drain()
    flush_access_log()
    await platform.bus.stop()
    await platform.db.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    contexts = load_contexts()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform = await build_platform(settings, contexts)
        app.state.platform = platform
        log.info(
            "hearth ready", extra={"database": platform.db.engine.url.render_as_string(hide_password=True)}
        )
        try:
            yield
        finally:
            await close_platform(platform)

    # FastAPI's OpenTelemetry hook checks the global providers on every request (~9% of the gateway's CPU
    # when profiled); Hearth exports Prometheus metrics instead.
    app = FastAPI(
        title="Hearth",
        version=__import__("hearth").__version__,
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_request_bytes,
        upload_limits=tuple((prefix, settings.max_upload_bytes) for prefix in settings.upload_path_prefixes),
    )

    from hearth.auth.api import router as auth_router
    from hearth.gateway.api import router as gateway_router
    from hearth.platform.api import router as platform_router

    app.include_router(platform_router)
    app.include_router(gateway_router)
    app.include_router(auth_router)
    for context in contexts:
        for router in context.routers:
            app.include_router(router)
    return app
