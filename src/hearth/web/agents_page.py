"""The Agents screen's page route: the query router and the research crew, their runs and steps. The page
carries only the layout; static/js/agents.js loads and starts runs through /api/agents."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from hearth.web.pages import user_page

router = APIRouter(include_in_schema=False)


@router.get("/agents")
async def agents(request: Request) -> Response:
    return await user_page(request, "agents.html", "Agents")
