"""The tips scheduler's log (`tips_agent_runs`: one row per agent per pre-compute pass, and one per user
asked for on demand) is pruned by age; only the newest run per agent matters to the scheduler, and an agent
without a recent one is simply due."""

from __future__ import annotations

from datetime import datetime, timedelta

from hearth.platform.db import Database
from hearth.platform.retention import RetentionRule, delete_in_batches
from hearth.tips.models import AgentRun


def agent_runs_rule(db: Database, days: float) -> RetentionRule:
    async def sweep(cutoff: datetime) -> int:
        old = AgentRun.finished_at.is_not(None) & (AgentRun.started_at < cutoff)
        return await delete_in_batches(db, AgentRun.id, old)

    return RetentionRule("tips.agent_runs", timedelta(days=days), sweep)
