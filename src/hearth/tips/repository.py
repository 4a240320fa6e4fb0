"""Owner-scoped access to the tips tables (the kit's `OwnedRepository`): another user's id is "not found"."""

from __future__ import annotations

from hearth.platform.kit.repository import OwnedRepository
from hearth.tips.models import TipsConnector, TipsContext, TipScore


class TipRepository(OwnedRepository[TipScore]):
    model = TipScore
    noun = "tip"
    param = "tip_id"


class ConnectorRepository(OwnedRepository[TipsConnector]):
    model = TipsConnector
    noun = "connector"
    param = "connector_id"


class ContextRepository(OwnedRepository[TipsContext]):
    model = TipsContext
    noun = "context"
    param = "name"

    async def named(self, name: str, *, lock: bool = False) -> TipsContext | None:
        stmt = self.select().where(TipsContext.name == name)
        if lock:
            stmt = stmt.with_for_update()
        return await self.session.scalar(stmt)
