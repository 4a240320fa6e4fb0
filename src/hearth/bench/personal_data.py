"""The bench part of a user's personal data: the short runs they started from the web UI's Bench screen."""

from __future__ import annotations

from sqlalchemy import delete, select

from hearth.bench.models import BenchRun
from hearth.platform.db import Database
from hearth.platform.personal_data import Rows, row_dict


class BenchPersonalData:
    context = "bench"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def export_user(self, user_id: str) -> Rows:
        async with self.db.sessions() as s:
            runs = await s.scalars(select(BenchRun).where(BenchRun.user_id == user_id))
            return {"runs": [row_dict(r) for r in runs]}

    async def erase_user(self, user_id: str) -> None:
        async with self.db.transaction() as s:
            await s.execute(delete(BenchRun).where(BenchRun.user_id == user_id))
