"""The agents part of a user's personal data: their router and crew runs (question, steps, answer) and the
graphs' checkpoints, which LangGraph keeps in its own tables under the run id as thread id."""

from __future__ import annotations

from sqlalchemy import delete, select

from hearth.agents.checkpoints import Checkpointer
from hearth.agents.models import AgentRun
from hearth.platform.db import Database
from hearth.platform.personal_data import Rows, row_dict


class AgentsPersonalData:
    context = "agents"

    def __init__(self, db: Database, checkpointer: Checkpointer) -> None:
        self.db = db
        self.checkpointer = checkpointer

    async def export_user(self, user_id: str) -> Rows:
        async with self.db.sessions() as s:
            runs = await s.scalars(
                select(AgentRun).where(AgentRun.user_id == user_id).order_by(AgentRun.created_at)
            )
            return {"runs": [row_dict(r) for r in runs]}

    async def erase_user(self, user_id: str) -> None:
        async with self.db.sessions() as s:
            ids = (await s.scalars(select(AgentRun.id).where(AgentRun.user_id == user_id))).all()
        for thread_id in ids:
            await self.checkpointer.saver.adelete_thread(thread_id)
        async with self.db.transaction() as s:
            await s.execute(delete(AgentRun).where(AgentRun.user_id == user_id))
