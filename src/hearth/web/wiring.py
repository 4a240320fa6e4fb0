"""The web UI as a context: its page and static routes, and the retention rule for expired web sessions.
Loaded last: its pages look up the chat and rag services (ports) when a page for one object is opened."""

from __future__ import annotations

from datetime import timedelta

from hearth.platform.core import Context, Platform
from hearth.platform.retention import RetentionRule
from hearth.web.agents_page import router as agents_router
from hearth.web.assets import router as assets_router
from hearth.web.pages import router as pages_router
from hearth.web.tool_pages import router as tool_pages_router
from hearth.web.workflows import router as workflows_router


async def start(platform: Platform) -> None:
    # Sessions past their expiry no longer sign anyone in; the sweep only removes the rows.
    platform.retention.register(
        RetentionRule(name="web.sessions", max_age=timedelta(0), sweep=platform.auth.web.sweep)
    )


CONTEXT = Context(
    name="web",
    start=start,
    routers=(pages_router, tool_pages_router, agents_router, workflows_router, assets_router),
)
