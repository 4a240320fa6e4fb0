"""The agents context's façade: checks a request, starts or resumes a run, and reads runs and tools."""

from __future__ import annotations

from typing import Any

from hearth.agents.mcp_server import McpHttp
from hearth.agents.runs import ActiveRun, Runs
from hearth.agents.runtime import RunDeps
from hearth.agents.schemas import Checkpoint, CrewRequest, RouterRequest, RunDetail, RunOut, ToolOut
from hearth.agents.tools import ToolArgumentsInvalid, ToolCall, ToolContext, ToolRegistry
from hearth.config import Settings
from hearth.platform.errors import HearthError, bad_request
from hearth.rag.ports import Retriever


class AgentsService:
    def __init__(
        self, *, runs: Runs, tools: ToolRegistry, retriever: Retriever | None, settings: Settings
    ) -> None:
        self.runs = runs
        self.tools = tools
        self.retriever = retriever
        self.settings = settings
        self.mcp: McpHttp | None = None  # the /mcp transport, when served

    async def _check_collections(self, user_id: str, names: list[str]) -> None:
        """Refuse now (404/403/503) what retrieval would refuse mid-run."""
        if names and self.retriever is None:
            raise HearthError(503, "RAG is not available on this server", code="rag_unavailable")
        for name in names:
            assert self.retriever is not None
            await self.retriever.retrieve(user_id=user_id, collection=name, query="check", top_k=1, top_n=1)

    async def start_router(self, *, deps: RunDeps, request: RouterRequest) -> ActiveRun:
        collections = list(dict.fromkeys([c for c in [request.collection, *request.collections] if c]))
        if request.route == "rag" and not collections:
            raise bad_request("route 'rag' needs a collection: pass 'collection'", param="collection")
        await self._check_collections(deps.user_id, collections)
        state: dict[str, Any] = {
            "query": request.query,
            "collection": request.collection,
            "collections": request.collections,
            "route_request": request.route,
            "mode": request.mode,
            "top_k": request.top_k,
            "top_n": request.top_n,
            "threshold": request.threshold
            if request.threshold is not None
            else self.settings.agents_threshold,
            "max_tokens": request.max_tokens or self.settings.agents_max_tokens,
        }
        return await self.runs.start(
            kind="router",
            deps=deps,
            query=request.query,
            request=request.model_dump(mode="json", exclude={"stream"}),
            state=state,
        )

    async def start_crew(self, *, deps: RunDeps, request: CrewRequest) -> ActiveRun:
        if request.collection:
            await self._check_collections(deps.user_id, [request.collection])
        names = [t.name for t in await self.tools.all()]
        allowed = names if request.tools is None else request.tools
        unknown = sorted(set(allowed) - set(names))
        if unknown:
            raise bad_request(
                f"unknown tool(s) {', '.join(unknown)}; available: {', '.join(names)}", param="tools"
            )
        state: dict[str, Any] = {
            "query": request.query,
            "collection": request.collection,
            "tools": allowed,
            "max_revisions": request.max_revisions
            if request.max_revisions is not None
            else self.settings.agents_max_revisions,
            "max_tokens": request.max_tokens or self.settings.agents_max_tokens,
        }
        return await self.runs.start(
            kind="crew",
            deps=deps,
            query=request.query,
            request=request.model_dump(mode="json", exclude={"stream"}),
            state=state,
        )

    async def resume(self, *, kind: str, deps: RunDeps, run_id: str) -> ActiveRun:
        return await self.runs.resume(kind=kind, deps=deps, run_id=run_id)

    async def list_runs(self, *, kind: str, user_id: str, limit: int, offset: int) -> list[RunOut]:
        return await self.runs.list(kind=kind, user_id=user_id, limit=limit, offset=offset)

    async def get_run(self, *, kind: str, user_id: str, run_id: str) -> RunDetail:
        return await self.runs.get(kind=kind, user_id=user_id, run_id=run_id)

    async def checkpoints(self, *, kind: str, user_id: str, run_id: str) -> list[Checkpoint]:
        return await self.runs.checkpoints(kind=kind, user_id=user_id, run_id=run_id)

    async def list_tools(self) -> list[ToolOut]:
        return [
            ToolOut(
                name=t.name,
                description=t.description,
                source=t.source,
                input_schema=t.input_schema,
                timeout_s=t.timeout,
            )
            for t in await self.tools.all()
        ]

    async def call_tool(self, *, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolCall:
        tool = await self.tools.get(name)  # 404 for an unknown tool
        try:
            tool.validate(arguments)
        except ToolArgumentsInvalid as exc:
            raise HearthError(422, str(exc), param="arguments", code="invalid_tool_arguments") from None
        return await self.tools.call(name, arguments, ctx)
