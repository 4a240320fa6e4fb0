"""Hearth as an MCP server (the official `mcp` package): the tool registry's tools, over streamable HTTP at
/mcp (Bearer API key; tools act with the caller's permissions and rate limits) and over stdio
(`hearth mcp`, acting for the key it was started with)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from contextvars import ContextVar
from typing import Any

import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from hearth.agents.tools import ToolContext, ToolRegistry
from hearth.auth.deps import authenticate, bearer_token
from hearth.gateway.service import metered_caller
from hearth.platform.errors import HearthError

# Who the current MCP request acts for: set by the HTTP endpoint per request, or once by `hearth mcp`.
current: ContextVar[ToolContext | None] = ContextVar("hearth_mcp_caller", default=None)


def build_server(tools: ToolRegistry) -> Server:  # type: ignore[type-arg]
    server: Server = Server("hearth", version=__import__("hearth").__version__)  # type: ignore[type-arg]

    @server.list_tools()  # type: ignore[no-untyped-call,untyped-decorator]
    async def list_tools() -> list[types.Tool]:
        return [
            types.Tool(name=t.name, description=t.description, inputSchema=t.input_schema)
            for t in await tools.all()
        ]

    # The registry validates (pydantic, with its own messages) and applies each tool's timeout.
    @server.call_tool(validate_input=False)  # type: ignore[untyped-decorator]
    async def call_tool(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        ctx = current.get()
        if ctx is None:
            raise PermissionError("not authenticated")
        call = await tools.call(name, arguments or {}, ctx)
        if not call.ok:
            raise RuntimeError(call.error or f"{name} failed")
        return {"result": call.result}

    return server


class McpHttp:
    """The streamable HTTP transport, started with the agents context and stopped with it."""

    def __init__(self, tools: ToolRegistry) -> None:
        self.manager = StreamableHTTPSessionManager(
            app=build_server(tools), json_response=True, stateless=True
        )
        self._stack = AsyncExitStack()

    async def start(self) -> None:
        await self._stack.enter_async_context(self.manager.run())

    async def stop(self) -> None:
        await self._stack.aclose()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate the Bearer key (401 in Hearth's error shape), check its rate limit (429), then
        serve the MCP request as that caller."""
        connection = HTTPConnection(scope)
        try:
            principal = await authenticate(connection, bearer_token(Headers(scope=scope)))
            caller = await metered_caller(connection.app, principal)
        except HearthError as exc:
            await exc.response()(scope, receive, send)
            return
        token = current.set(
            ToolContext(user_id=principal.user_id, caller=caller, is_admin=principal.is_admin)
        )
        try:
            await self.manager.handle_request(scope, receive, send)
        finally:
            current.reset(token)


class McpEndpoint:
    """The ASGI app routed at /mcp: finds the running context's transport (503 when MCP is off)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from hearth.agents.ports import SERVICE

        service = scope["app"].state.platform.ports.find(SERVICE)
        if service is None or service.mcp is None:
            error = HearthError(503, "MCP over HTTP is off on this server", code="mcp_unavailable")
            await error.response()(scope, receive, send)
            return
        await service.mcp.handle(scope, receive, send)
