"""Owner-scoped access to agent runs: every statement carries the owner filter (another user's run is
a 404)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.agents.models import AgentRun
from hearth.platform.kit.repository import OwnedRepository, or_404


class RunRepository(OwnedRepository[AgentRun]):
    model = AgentRun
    noun = "run"
    param = "run_id"

    async def of_kind_or_404(self, run_id: str, kind: str, *, lock: bool = False) -> AgentRun:
        """The user's run of this kind; a crew run asked for as a router run is "not found" too."""
        stmt = self.select().where(AgentRun.id == run_id, AgentRun.kind == kind)
        if lock:
            stmt = stmt.with_for_update()
        return or_404(await self.session.scalar(stmt), f"no {kind} run {run_id!r}", param=self.param)

    async def page(self, kind: str, *, limit: int, offset: int) -> list[AgentRun]:
        """The user's runs of one kind, newest first."""
        stmt = self.select().where(AgentRun.kind == kind).order_by(AgentRun.created_at.desc(), AgentRun.id)
        return await self.list(stmt, limit=limit, offset=offset)


async def mark_abandoned(session: AsyncSession, *, running_ids: set[str]) -> int:
    """Across all users: runs still `running` that no task of this process runs were cut short by a stopped
    process; they become `interrupted` (resumable from their last checkpoint)."""
    stmt = update(AgentRun).where(AgentRun.status == "running")
    if running_ids:
        stmt = stmt.where(AgentRun.id.not_in(running_ids))
    result = await session.execute(stmt.values(status="interrupted"))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
