"""Owner-scoped access to agent runs: every statement carries the owner filter (another user's run is
a 404)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.agents.models import AgentRun
from hearth.platform.kit.repository import OwnedRepository, in_chunks, or_404


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


async def beat(session: AsyncSession, *, running_ids: set[str], now: datetime) -> None:
    """The process running these runs is alive: their `updated_at` moves on."""
    for chunk in in_chunks(sorted(running_ids)):
        await session.execute(
            update(AgentRun)
            .where(AgentRun.id.in_(chunk), AgentRun.status == "running")
            .values(updated_at=now)
        )


async def mark_abandoned(session: AsyncSession, *, running_ids: set[str], stale_before: datetime) -> int:
    """Across all users: runs still `running` whose process has not beaten since `stale_before` (it was
    killed or stopped) become `interrupted`, resumable from their last checkpoint. Runs of live processes,
    this one's or another worker's or replica's, keep beating and are left alone."""
    stmt = update(AgentRun).where(AgentRun.status == "running", AgentRun.updated_at < stale_before)
    if running_ids:
        stmt = stmt.where(AgentRun.id.not_in(running_ids))
    result = await session.execute(stmt.values(status="interrupted"))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
