"""Agents routes under /api/agents: router and crew runs (run, stream, get, checkpoints, resume, list) and
the tool registry. Thin: parse, call the service, shape the reply. Every route acts for the caller only."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response
from starlette.routing import Route

from hearth.agents.mcp_server import McpEndpoint
from hearth.agents.ports import SERVICE
from hearth.agents.runs import ActiveRun
from hearth.agents.runtime import RunDeps
from hearth.agents.schemas import (
    Checkpoint,
    CrewRequest,
    ResumeRequest,
    RouterRequest,
    RunDetail,
    RunOut,
    ToolCallOut,
    ToolCallRequest,
    ToolOut,
)
from hearth.agents.service import AgentsService
from hearth.agents.tools import ToolContext
from hearth.auth.deps import CurrentUser
from hearth.auth.principal import Principal
from hearth.gateway.service import metered_caller
from hearth.platform.deps import port
from hearth.platform.kit.openapi import MODEL_ERRORS, errors, event_stream
from hearth.platform.kit.repository import MAX_SQL_INT
from hearth.platform.kit.sse import SSEResponse, named_frames

router = APIRouter(prefix="/api/agents", tags=["agents"])
# Hearth's tools over MCP (streamable HTTP); not an OpenAPI operation: MCP clients speak JSON-RPC to it.
mcp_router = APIRouter()
mcp_router.routes.append(
    Route("/mcp", McpEndpoint(), methods=["GET", "POST", "DELETE"], include_in_schema=False)
)
Agents = Annotated[AgentsService, Depends(port(SERVICE))]


async def _deps(request: Request, principal: Principal) -> RunDeps:
    return RunDeps(
        user_id=principal.user_id,
        caller=await metered_caller(request.app, principal),
        is_admin=principal.is_admin,
    )


def _run_responses(status: int) -> dict[int | str, dict[str, Any]]:
    return {**errors(403, *MODEL_ERRORS), **event_stream(status)}


async def _reply(
    agents: AgentsService, kind: str, active: ActiveRun, user_id: str, stream: bool, status: int
) -> Response:
    if stream:
        return SSEResponse(named_frames(agents.runs.events(active)), status_code=status)
    await agents.runs.wait(active)  # the run goes on even if this client leaves
    detail = await agents.get_run(kind=kind, user_id=user_id, run_id=active.run_id)
    return Response(detail.model_dump_json(), status_code=status, media_type="application/json")


async def _follow(
    agents: AgentsService, kind: str, run_id: str, user_id: str
) -> AsyncIterator[dict[str, Any]]:
    active = agents.runs.active.get(run_id)
    if active is not None:
        async for event in agents.runs.events(active):
            yield event
        return
    detail = await agents.get_run(kind=kind, user_id=user_id, run_id=run_id)
    run = RunOut.model_validate(detail).model_dump(mode="json")
    if detail.status == "completed":
        yield {"type": "done", "run": run}
    else:
        yield {
            "type": "error",
            "error": {"message": detail.error, "code": f"run_{detail.status}"},
            "run": run,
        }


def _routes(kind: str, body_model: type[RouterRequest] | type[CrewRequest]) -> None:
    what = "the query router" if kind == "router" else "the research crew"

    async def run(body: body_model, request: Request, principal: CurrentUser, agents: Agents) -> Response:  # type: ignore[valid-type]
        deps = await _deps(request, principal)
        if kind == "router":
            active = await agents.start_router(deps=deps, request=body)
        else:
            active = await agents.start_crew(deps=deps, request=body)
        return await _reply(agents, kind, active, principal.user_id, body.stream, 201)  # type: ignore[attr-defined]

    run.__doc__ = (
        f"Start a run of {what}. With `stream: true` its node events and tokens stream back as SSE; "
        "otherwise the finished run is returned."
    )
    router.add_api_route(
        f"/{kind}",
        run,
        methods=["POST"],
        status_code=201,
        response_model=RunDetail,
        responses=_run_responses(201),
        name=f"run_{kind}",
        operation_id=f"run_{kind}",
    )

    async def list_runs(
        principal: CurrentUser,
        agents: Agents,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
    ) -> list[RunOut]:
        return await agents.list_runs(kind=kind, user_id=principal.user_id, limit=limit, offset=offset)

    list_runs.__doc__ = f"The caller's runs of {what}, newest first."
    router.add_api_route(
        f"/{kind}", list_runs, methods=["GET"], name=f"list_{kind}_runs", operation_id=f"list_{kind}_runs"
    )

    async def get_run(run_id: str, principal: CurrentUser, agents: Agents) -> RunDetail:
        return await agents.get_run(kind=kind, user_id=principal.user_id, run_id=run_id)

    get_run.__doc__ = "One run: its status, result and the steps taken so far (another user's run is a 404)."
    router.add_api_route(
        f"/{kind}/{{run_id}}",
        get_run,
        methods=["GET"],
        responses=errors(404),
        name=f"get_{kind}_run",
        operation_id=f"get_{kind}_run",
    )

    async def checkpoints(run_id: str, principal: CurrentUser, agents: Agents) -> list[Checkpoint]:
        return await agents.checkpoints(kind=kind, user_id=principal.user_id, run_id=run_id)

    checkpoints.__doc__ = (
        "The run's checkpoints, oldest first: the node(s) each step ran and the state after it."
    )
    router.add_api_route(
        f"/{kind}/{{run_id}}/checkpoints",
        checkpoints,
        methods=["GET"],
        responses=errors(404),
        name=f"{kind}_run_checkpoints",
        operation_id=f"{kind}_run_checkpoints",
    )

    async def stream(run_id: str, principal: CurrentUser, agents: Agents) -> Response:
        await agents.get_run(kind=kind, user_id=principal.user_id, run_id=run_id)  # 404 before streaming
        return SSEResponse(named_frames(_follow(agents, kind, run_id, principal.user_id)))

    stream.__doc__ = (
        "Follow a run as SSE: a running run's events from its start, then `done` or `error`; a finished "
        "run's "
        "outcome at once."
    )
    router.add_api_route(
        f"/{kind}/{{run_id}}/stream",
        stream,
        methods=["GET"],
        responses={**errors(404), **event_stream(200)},
        name=f"stream_{kind}_run",
        operation_id=f"stream_{kind}_run",
    )

    async def resume(
        run_id: str,
        request: Request,
        principal: CurrentUser,
        agents: Agents,
        body: ResumeRequest | None = None,
    ) -> Response:
        active = await agents.resume(kind=kind, deps=await _deps(request, principal), run_id=run_id)
        return await _reply(agents, kind, active, principal.user_id, bool(body and body.stream), 200)

    resume.__doc__ = (
        "Resume a failed or interrupted run from its last checkpoint (the steps already taken are not run "
        "again); 409 when it is running or has completed."
    )
    router.add_api_route(
        f"/{kind}/{{run_id}}/resume",
        resume,
        methods=["POST"],
        response_model=RunDetail,
        responses={**_run_responses(200), **errors(409)},
        name=f"resume_{kind}_run",
        operation_id=f"resume_{kind}_run",
    )


_routes("router", RouterRequest)
_routes("crew", CrewRequest)


@router.get("/tools")
async def list_tools(_: CurrentUser, agents: Agents) -> list[ToolOut]:
    """The tools agents (and MCP clients) may call, with their argument schemas and timeouts."""
    return await agents.list_tools()


@router.post("/tools/{name}", responses=errors(404, 422, 429))
async def call_tool(
    name: str, body: ToolCallRequest, request: Request, principal: CurrentUser, agents: Agents
) -> ToolCallOut:
    """Call one tool as the caller (their collections, their permissions). A failure (invalid arguments,
    timeout, error) is reported in the result with `ok: false`."""
    caller = await metered_caller(request.app, principal)
    ctx = ToolContext(user_id=principal.user_id, caller=caller, is_admin=principal.is_admin)
    call = await agents.call_tool(name=name, arguments=body.arguments, ctx=ctx)
    return ToolCallOut(**call.as_dict())
