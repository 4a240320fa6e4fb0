"""The FastAPI application: builds the platform (hearth.platform.core) at start-up and mounts every
context's routes."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hearth.config import Settings
from hearth.platform.core import build_platform, close_platform, load_contexts
from hearth.platform.errors import install_error_handlers
from hearth.platform.kit import openapi
from hearth.platform.logging import configure_logging
from hearth.platform.middleware import RequestContextMiddleware

log = logging.getLogger("hearth")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    # Read the model catalogue now: a mistake in it stops start-up here, as one ConfigError line naming the
    # file, the key path and the fix (`hearth serve` prints it), not as a traceback inside the server.
    settings.models  # noqa: B018
    log.info("model catalogue loaded", extra={"config_file": str(settings.models_file or "none (built-in)")})
    contexts = load_contexts()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform = await build_platform(settings, contexts)
        app.state.platform = platform
        # What start-up built (modules, models, catalogues: ~250k objects) lives as long as the server. Out of
        # the collector's sight, a full collection scans only what came after: without this one took 0.24 to
        # 0.95 s under load here, with the event loop's thread inside it (bench/soak.py --probe).
        gc.collect()
        gc.freeze()
        log.info(
            "hearth ready",
            extra={
                "database": platform.db.engine.url.render_as_string(hide_password=True),
                "config_file": str(settings.models_file or "none (built-in models only)"),
                "aliases": len(platform.gateway.aliases),
            },
        )
        try:
            yield
        finally:
            await close_platform(platform)
            gc.unfreeze()  # what the server held can be collected again (tests run many servers in a process)

    # FastAPI's OpenTelemetry hook checks the global providers on every request (~9% of the gateway's CPU
    # when profiled); Hearth exports Prometheus metrics instead.
    app = FastAPI(
        title="Hearth",
        version=__import__("hearth").__version__,
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # Served by openapi.install_docs from local assets: FastAPI's own pages load theirs from a CDN.
        docs_url=None,
        redoc_url=None,
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
    openapi.install(app)
    openapi.install_docs(app)
    return app
