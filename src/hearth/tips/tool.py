"""`tips_next` as an agent tool: the agents context's crews and MCP clients ask for the caller's next tip
through the same orchestrator as `POST /api/tips/next` (their consents, their agents' snippets)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hearth.agents.tools import Tool, ToolContext, typed_tool
from hearth.tips.service import TipsService


class TipsNextArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    candidates: int = Field(1, ge=1, le=3, description="More than one: the judge alias picks the best")


def tips_next_tool(service: TipsService, *, timeout: float) -> Tool:
    async def run(args: TipsNextArgs, ctx: ToolContext) -> dict[str, Any]:
        tip = await service.next_tip(user_id=ctx.user_id, caller=ctx.caller, candidates=args.candidates)
        return {
            "id": tip.id,
            "text": tip.text,
            "contributing_agents": tip.contributing_agents,
            "fallback": tip.fallback,
            "expires_at": tip.expires_at.isoformat(),
        }

    return typed_tool(
        "tips_next",
        "The caller's next tip from their connected tools (tasks, calendar) and the agents behind it.",
        TipsNextArgs,
        run,
        timeout=timeout,
    )
