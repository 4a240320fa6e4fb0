"""The agents' retention rule: router and crew runs that ended (completed, failed or interrupted) more than
`agents_retention_days` ago go, with their LangGraph checkpoints, which hold every step's full state and
are most of what an agent run stores."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select

from hearth.agents.checkpoints import Checkpointer
from hearth.agents.models import AgentRun
from hearth.platform.db import Database
from hearth.platform.retention import RetentionRule

BATCH = 200  # runs per round: each is one checkpoint delete per thread, then one row delete for all


def runs_rule(db: Database, checkpointer: Checkpointer, days: float) -> RetentionRule:
    async def sweep(cutoff: datetime) -> int:
        removed = 0
        while True:
            async with db.sessions() as s:
                ids = list(
                    await s.scalars(
                        select(AgentRun.id)
                        .where(AgentRun.status != "running", AgentRun.updated_at < cutoff)
                        .order_by(AgentRun.updated_at)
                        .limit(BATCH)
                    )
                )
            if not ids:
                return removed
            # Checkpoints first, as erasure does: a crash between the two leaves a row whose next sweep
            # finishes the job, never checkpoints nothing points at.
            for thread_id in ids:
                await checkpointer.saver.adelete_thread(thread_id)
            async with db.transaction() as s:
                # A run resumed since it was read is running again: its row stays (its history is gone) and
                # is not counted.
                done = await s.execute(
                    delete(AgentRun).where(AgentRun.id.in_(ids), AgentRun.status != "running")
                )
            removed += done.rowcount or 0  # type: ignore[attr-defined]

    return RetentionRule("agents.runs", timedelta(days=days), sweep)
