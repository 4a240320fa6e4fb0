"""An external MCP server for the agents tests, built with the official SDK's FastMCP and served over
streamable HTTP by uvicorn on a loopback port (in a thread)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from mcp.server.fastmcp import FastMCP

from tests.harness import free_port
from tests.helpers import wait_until


def external_server() -> FastMCP:
    server = FastMCP("ext", stateless_http=True, json_response=True)

    @server.tool()
    async def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    async def nap(seconds: float) -> str:
        """Sleep, then say so."""
        await asyncio.sleep(seconds)
        return f"slept {seconds}"

    return server


@contextmanager
def run_external_mcp() -> Iterator[str]:
    port = free_port()
    app = external_server().streamable_http_app()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True, name="external-mcp")
    thread.start()
    url = f"http://127.0.0.1:{port}/mcp"

    def up() -> bool:
        try:
            httpx.get(url, timeout=1)
            return True
        except httpx.TransportError:
            return False

    wait_until(up, 20, what="external MCP server")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
