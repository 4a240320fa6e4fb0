"""Agent commands: `hearth ask --agent router` (declared in cli/rag.py, answered here) and `hearth crew`,
HTTP clients of a running server; `hearth mcp`, Hearth's tools over MCP on stdin/stdout, in this process."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httpx
import orjson
import typer

from hearth.cli.client_commands import KEY_OPTION, URL_OPTION, console
from hearth.cli.http import fail_with, unreachable
from hearth.cli.main import app


def _stream(client: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST a run with stream on; print steps to stderr and tokens to stdout as they come; the last event."""
    last: dict[str, Any] = {}
    printing = False
    try:
        with client.http.stream("POST", path, json={**body, "stream": True}) as response:
            if response.status_code not in (200, 201):
                response.read()
                fail_with(response)
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                event = orjson.loads(line[6:])
                kind = event["type"]
                if kind == "token":
                    sys.stdout.write(event["content"])
                    sys.stdout.flush()
                    printing = True
                    continue
                if printing:
                    sys.stdout.write("\n")
                    printing = False
                if kind == "node":
                    typer.secho(_describe(event["node"], event["step"]), fg="cyan", err=True)
                elif kind == "tool_result":
                    state = "ok" if event["ok"] else f"failed: {event['error']}"
                    typer.secho(f"  tool {event['tool']} {state}", fg="cyan", err=True)
                elif kind in ("done", "error"):
                    last = event
    except httpx.TransportError as exc:
        raise unreachable(exc) from None
    return last


def _describe(node: str, step: dict[str, Any]) -> str:
    out = step["output"]
    detail = {
        "classify": lambda: f"{out['category']} (by {out['classified_by']})",
        "route": lambda: out["route"] + (f" → {out['collection']}" if out.get("collection") else ""),
        "retrieve": lambda: f"{len(out['sources'])} passages",
        "judge": lambda: f"score {out['score']} (by {out['judged_by']})",
        "retry": lambda: out["strategy"],
        "reviewer": lambda: f"{out['verdict']} (score {out['score']})",
    }.get(node, lambda: "")()
    return f"[{node}] {detail} ({step['latency_ms']:.0f} ms)".replace("]  (", "] (")


def _finish(last: dict[str, Any]) -> dict[str, Any]:
    if last.get("type") != "done":
        message = (last.get("error") or {}).get("message") or "the run ended without a result"
        run = last.get("run") or {}
        hint = f" (resume it: POST /api/agents/{run.get('kind')}/{run.get('id')}/resume)" if run else ""
        typer.secho(f"error: {message}{hint}", fg="red", err=True)
        raise typer.Exit(1)
    return last["run"]["result"] or {}


def ask_router(
    client: Any,
    question: str,
    *,
    collection: str | None,
    mode: str | None,
    top_k: int,
    top_n: int,
    max_tokens: int,
) -> None:
    body = {
        "query": question,
        "collection": collection,
        "mode": mode,
        "top_k": top_k,
        "top_n": top_n,
        "max_tokens": max_tokens,
    }
    result = _finish(_stream(client, "/api/agents/router", body))
    if result.get("retried") or result.get("answer_mode") == "extractive_fallback":
        console.print(
            result["answer"], markup=False, highlight=False
        )  # the kept answer, not the streamed one
    for source in result.get("sources", []):
        console.print(f"[bold][{source['n']}][/] {source['title']} (score {source['score']:.3f})")
    verdict = "passed" if result.get("passed") else "below the threshold"
    console.print(
        f"[dim]{result['category']} → {result['route']}; judged {result['score']} by {result['judged_by']} "
        f"({verdict}){'; retried once' if result.get('retried') else ''}[/]"
    )


@app.command()
def crew(
    task: str = typer.Argument(..., help="The research task."),
    collection: str | None = typer.Option(
        None, "--collection", "-c", help="Collection the researcher searches."
    ),
    tool: list[str] = typer.Option(
        [],
        "--tool",
        help="A tool the researcher may use (repeat; default: all; GET /api/agents/tools lists them).",
    ),
    max_revisions: int | None = typer.Option(
        None, min=0, max=5, help="Times the reviewer may send the draft back (default: the server's)."
    ),
    max_tokens: int | None = typer.Option(None, min=1, help="Most tokens per draft."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Run the research crew: a researcher with tools, a writer and a reviewer (bounded revisions)."""
    from hearth.cli.rag import Client

    client = Client(url, api_key)
    body = {
        "query": task,
        "collection": collection,
        "tools": tool or None,
        "max_revisions": max_revisions,
        "max_tokens": max_tokens,
    }
    result = _finish(_stream(client, "/api/agents/crew", body))
    if result.get("revisions"):
        console.print(result["answer"], markup=False, highlight=False)  # the final draft
    state = "approved" if result.get("approved") else "not approved (revision limit reached)"
    console.print(
        f"[dim]{state} after {result.get('revisions', 0)} revision(s); score {result.get('score')}[/]"
    )


@app.command("mcp")
def mcp_stdio(
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        envvar="HEARTH_API_KEY",
        help="The key whose permissions the tools act with (default: the first admin key saved in the home).",
    ),
) -> None:
    """Serve Hearth's tools over MCP on stdin/stdout (for MCP clients that start a command). Runs Hearth's
    contexts in this process, on the home's database."""
    from hearth import home

    key = home.api_key(api_key)
    if not key:
        raise typer.BadParameter("no API key: pass --api-key or set HEARTH_API_KEY", param_hint="--api-key")
    asyncio.run(_serve_stdio(key))


async def _serve_stdio(key: str) -> None:
    from mcp.server.stdio import stdio_server

    from hearth.agents.mcp_server import build_server, current
    from hearth.agents.ports import SERVICE
    from hearth.agents.tools import ToolContext
    from hearth.config import Settings
    from hearth.gateway.service import Caller
    from hearth.platform.core import build_platform, close_platform, load_contexts
    from hearth.platform.logging import configure_logging

    settings = Settings(agents_mcp_http=False, voice_warmup=False)
    configure_logging("WARNING")  # stdout is the protocol; logs go to stderr
    platform = await build_platform(settings, load_contexts())
    try:
        principal = await platform.auth.authenticate(key)
        if principal is None:
            typer.secho("error: invalid or revoked API key", fg="red", err=True)
            raise typer.Exit(1)
        caller = Caller(user_id=principal.user_id, key_id=principal.key_id, priority=principal.priority)
        current.set(ToolContext(user_id=principal.user_id, caller=caller, is_admin=principal.is_admin))
        server = build_server(platform.ports.require(SERVICE).tools)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await close_platform(platform)
