"""The Workflows screen's page route: the layout only; static/js/workflows.js loads pipelines and runs from
/api/workflows and follows the selected run's steps."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from hearth.web.pages import user_page

router = APIRouter(include_in_schema=False)


@router.get("/workflows")
async def workflows(request: Request) -> Response:
    return await user_page(request, "workflows.html", "Workflows")
