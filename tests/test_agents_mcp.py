"""MCP round trips with the official MCP client: Hearth's tools over streamable HTTP at /mcp (Bearer auth,
the caller's permissions) and over stdio (`hearth mcp`), and an external MCP server started here, configured
in hearth.yaml, whose tools agents call (with their timeout)."""

from __future__ import annotations

import os
import sys
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client

from tests.agents_helpers import Script, agents_config, ingest, user_key
from tests.fake_openai import FakeOpenAI
from tests.harness import run_hearth
from tests.helpers import wait_indexed
from tests.mcp_helpers import run_external_mcp


@pytest.fixture(scope="module")
def hearth(tmp_path_factory):  # type: ignore[no-untyped-def]
    upstream = FakeOpenAI().start()
    upstream.behaviour.script = Script()
    with run_external_mcp() as external:
        config: dict[str, Any] = agents_config(upstream.url)
        config["mcp_servers"] = {
            "ext": {"url": external, "timeout": 1.0},
            "down": {"url": "http://127.0.0.1:9/mcp"},  # nothing listens there: its tools are just absent
        }
        with run_hearth(tmp_path_factory.mktemp("agents-mcp"), config) as server:
            ingest(server, "notes", "Boiler manual", "The boiler pressure should read 1.5 bar.")
            wait_indexed(server, "notes", 1)
            yield server
    upstream.stop()


async def _http_session_call(url: str, key: str | None, name: str, arguments: dict) -> tuple[list[str], Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    async with (
        streamablehttp_client(f"{url}/mcp", headers=headers) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = [t.name for t in (await session.list_tools()).tools]
        result = await session.call_tool(name, arguments)
        return tools, result


async def test_hearth_tools_over_streamable_http(hearth) -> None:  # type: ignore[no-untyped-def]
    tools, result = await _http_session_call(
        hearth.url, hearth.admin_key, "calculator", {"expression": "6 * 7"}
    )
    assert {"rag_search", "document_fetch", "calculator", "ext_add", "ext_nap"} <= set(tools)
    assert not result.isError and result.structuredContent["result"]["value"] == 42
    # rag_search acts as the caller: the admin finds their passage…
    _, found = await _http_session_call(
        hearth.url, hearth.admin_key, "rag_search", {"collection": "notes", "query": "boiler pressure"}
    )
    assert not found.isError and "1.5 bar" in found.structuredContent["result"][0]["text"]
    # …another user may not read the admin's collection.
    other = user_key(hearth, "mcp-other")
    _, refused = await _http_session_call(
        hearth.url, other, "rag_search", {"collection": "notes", "query": "boiler pressure"}
    )
    assert refused.isError and "notes" in refused.content[0].text
    # Invalid arguments come back as a tool error naming the field.
    _, invalid = await _http_session_call(hearth.url, hearth.admin_key, "calculator", {})
    assert invalid.isError and "expression" in invalid.content[0].text


def test_mcp_over_http_needs_a_key(hearth) -> None:  # type: ignore[no-untyped-def]
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    r = httpx.post(f"{hearth.url}/mcp", json=init, headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    r = httpx.post(f"{hearth.url}/mcp", json=init, headers={**headers, "Authorization": "Bearer hk-wrong"})
    assert r.status_code == 401


def test_external_mcp_tools_are_agent_tools_with_a_timeout(hearth) -> None:  # type: ignore[no-untyped-def]
    def call(name: str, arguments: dict) -> dict:
        r = httpx.post(
            f"{hearth.url}/api/agents/tools/{name}",
            json={"arguments": arguments},
            headers=hearth.headers(),
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return r.json()

    tools = {
        t["name"]: t for t in httpx.get(f"{hearth.url}/api/agents/tools", headers=hearth.headers()).json()
    }
    assert tools["ext_add"]["source"] == "mcp:ext" and tools["ext_add"]["timeout_s"] == 1.0
    assert not any(name.startswith("down_") for name in tools)
    assert call("ext_add", {"a": 2, "b": 40})["result"] == {"result": 42}
    slow = call("ext_nap", {"seconds": 5})
    assert not slow["ok"] and "timed out after 1 s" in slow["error"]
    assert call("ext_nap", {"seconds": 0.01})["ok"]
    # The server's schema validates arguments before the call leaves Hearth.
    r = httpx.post(
        f"{hearth.url}/api/agents/tools/ext_add", json={"arguments": {"a": "two"}}, headers=hearth.headers()
    )
    assert r.status_code == 422


async def test_hearth_mcp_over_stdio(hearth) -> None:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "HEARTH_HOME": str(hearth.settings.data_dir),
        "HEARTH_DATABASE_URL": hearth.settings.resolved_database_url,
        "HEARTH_CONFIG_FILE": str(hearth.settings.models_file),
        "HEARTH_RAG_WORKER": "false",
        "HEARTH_API_KEY": hearth.admin_key,
    }
    params = StdioServerParameters(command=sys.executable, args=["-m", "hearth", "mcp"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = [t.name for t in (await session.list_tools()).tools]
        assert "calculator" in tools and "rag_search" in tools
        result = await session.call_tool("calculator", {"expression": "2 ** 10"})
        assert not result.isError and result.structuredContent["result"]["value"] == 1024
        found = await session.call_tool("rag_search", {"collection": "notes", "query": "boiler"})
        assert not found.isError and "1.5 bar" in found.structuredContent["result"][0]["text"]
