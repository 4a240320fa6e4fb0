"""Tools of external MCP servers (configured in hearth.yaml) as agent tools, through the official MCP
client: the server's tools are listed when first needed, and each call opens a session, calls, and closes
it (no connection to keep healthy between calls)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client

from hearth.agents.mcp_config import McpServerConfig
from hearth.agents.tools import Tool, ToolContext

log = logging.getLogger("hearth.agents")


@asynccontextmanager
async def session(config: McpServerConfig) -> AsyncIterator[ClientSession]:
    if config.url is not None:
        async with (
            streamablehttp_client(config.url, headers=config.headers or None) as (read, write, _),
            ClientSession(read, write) as s,
        ):
            await s.initialize()
            yield s
        return
    assert config.command is not None
    params = StdioServerParameters(command=config.command, args=config.args, env=config.env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
        await s.initialize()
        yield s


def loader(name: str, config: McpServerConfig, default_timeout: float) -> Callable[[], Awaitable[list[Tool]]]:
    """A registry loader: the server's tools, named `<server>_<tool>`."""

    async def load() -> list[Tool]:
        async with session(config) as s:
            listed = (await s.list_tools()).tools
        return [
            _tool(name, config, t.name, t.description or "", t.inputSchema, default_timeout) for t in listed
        ]

    return load


def _tool(
    server: str, config: McpServerConfig, tool: str, description: str, schema: dict[str, Any], timeout: float
) -> Tool:
    async def run(arguments: dict[str, Any], ctx: ToolContext) -> Any:
        async with session(config) as s:
            result = await s.call_tool(tool, arguments)
        texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
        if result.isError:
            raise RuntimeError(" ".join(texts) or f"{server}/{tool} failed")
        if result.structuredContent is not None:
            return result.structuredContent
        return texts[0] if len(texts) == 1 else texts

    return Tool(
        name=f"{server}_{tool}",
        description=f"[MCP {server}] {description}".strip(),
        input_schema=schema or {"type": "object"},
        run=run,
        timeout=config.timeout or timeout,
        source=f"mcp:{server}",
    )
