"""The Workflows screen's page route: the layout only; static/js/workflows.js loads pipelines and runs from
/api/workflows and follows the selected run's steps."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from hearth.web import session as web
from hearth.web.render import page

router = APIRouter(include_in_schema=False)


@router.get("/workflows")
async def workflows(request: Request) -> Response:
    active = await web.current_session(request)
    if active is None:
        return web.to_login(request)
    return page(request, "workflows.html", active=active, title="Workflows")
