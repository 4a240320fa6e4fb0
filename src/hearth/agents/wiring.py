"""How the agents context plugs into the platform (see hearth.platform.core): uses rag's `Retriever` and
`DocumentReader` and the planner's `Predictions` when loaded (their tools are left out otherwise), opens
LangGraph's checkpoint saver on Hearth's database, and provides `ToolSink` and its service."""

from __future__ import annotations

from dataclasses import dataclass

from hearth.agents import mcp_client, ports
from hearth.agents.api import mcp_router, router
from hearth.agents.builtin_tools import register_builtin
from hearth.agents.checkpoints import Checkpointer, open_checkpointer
from hearth.agents.crew_graph import CrewGraph
from hearth.agents.mcp_config import load_mcp_servers
from hearth.agents.mcp_server import McpHttp
from hearth.agents.personal_data import AgentsPersonalData
from hearth.agents.retention import runs_rule
from hearth.agents.router_graph import RouterGraph
from hearth.agents.runs import Runs
from hearth.agents.service import AgentsService
from hearth.agents.tools import ToolRegistry
from hearth.planner.ports import PREDICTIONS
from hearth.platform.core import Context, Platform
from hearth.platform.kit.leases import advisory_lock
from hearth.rag.ports import DOCUMENTS, RETRIEVER


@dataclass
class Running:
    service: AgentsService
    checkpointer: Checkpointer


async def start(platform: Platform) -> Running:
    settings = platform.settings
    retriever = platform.ports.find(RETRIEVER)
    tools = ToolRegistry(default_timeout=settings.agents_tool_timeout)
    register_builtin(
        tools,
        retriever=retriever,
        documents=platform.ports.find(DOCUMENTS),
        predictions=platform.ports.find(PREDICTIONS),
    )
    # LangGraph's saver migrates its own tables at setup; replicas starting together on one PostgreSQL
    # would race on its migrations table, so one sets up at a time. Its CREATE INDEX CONCURRENTLY waits
    # for open transactions, so the others wait by polling, outside any statement.
    async with advisory_lock(platform.db, "agents.checkpointer.setup", poll=0.2):
        checkpointer = await open_checkpointer(platform.db.url)
    graphs = {
        "router": RouterGraph(platform.gateway, retriever, settings).build(checkpointer.saver),
        "crew": CrewGraph(platform.gateway, tools, settings).build(checkpointer.saver),
    }
    runs = Runs(
        db=platform.db,
        bus=platform.bus,
        graphs=graphs,
        heartbeat_seconds=settings.agents_heartbeat_seconds,
        durability=settings.agents_checkpoint_durability,
    )
    await runs.recover()
    runs.start_heartbeat()
    service = AgentsService(runs=runs, tools=tools, retriever=retriever, settings=settings)
    for name, config in load_mcp_servers(settings.models_file).items():
        tools.loaders.append(mcp_client.loader(name, config, settings.agents_tool_timeout))
    if settings.agents_mcp_http:
        service.mcp = McpHttp(tools)
        await service.mcp.start()
    platform.ports.provide(ports.TOOLS, tools)
    platform.personal_data.register(AgentsPersonalData(platform.db, checkpointer))
    if settings.agents_retention_days > 0:
        platform.retention.register(runs_rule(platform.db, checkpointer, settings.agents_retention_days))
    platform.ports.provide(ports.SERVICE, service)
    return Running(service, checkpointer)


async def stop(running: Running) -> None:
    if running.service.mcp is not None:
        await running.service.mcp.stop()
    await running.service.runs.stop()
    await running.checkpointer.close()


CONTEXT = Context(name="agents", start=start, stop=stop, routers=(router, mcp_router))
