"""What the agents context offers: its tool registry (contexts loaded after it add tools there, e.g. the
tips context's `tips_next`), and `SERVICE` for its own routes and the MCP server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from hearth.agents.tools import Tool
from hearth.platform.ports import Port

if TYPE_CHECKING:
    from hearth.agents.service import AgentsService


class ToolSink(Protocol):
    def register(self, tool: Tool) -> None:
        """Add a tool agents and MCP clients may call (ValueError if the name is taken)."""
        ...


TOOLS: Port[ToolSink] = Port("agents.tools")
SERVICE: Port[AgentsService] = Port("agents.service")
