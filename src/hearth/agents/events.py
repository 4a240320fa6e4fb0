"""Events of the agents context (wire types: never rename a class; add fields only with defaults)."""

from __future__ import annotations

from typing import ClassVar

from hearth.events.schemas import Event


class _AgentsEvent(Event):
    context: ClassVar[str] = "agents"


class AgentRunFinished(_AgentsEvent):
    """A router or crew run ended (completed or failed); `score` is the judge's last score (router)."""

    run_id: str
    user_id: str
    kind: str
    status: str
    score: int | None = None
    steps: int = 0
