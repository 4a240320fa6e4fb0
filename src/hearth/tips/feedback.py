"""Feedback on a tip: done, snooze (until a time) or dismiss. Stored in `tip_feedback`, published as
`TipFeedbackGiven`; `done` also marks the tip's task done at its source when the user granted tasks.write
and the connector can (Todoist's close endpoint, a ticked box in a Markdown file)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, select

from hearth.events.bus import EventBus
from hearth.platform.db import Database, new_id, utcnow
from hearth.platform.errors import HearthError
from hearth.tips.events import TipFeedbackGiven
from hearth.tips.manifest import Registry
from hearth.tips.models import AgentOutput, TipFeedback, TipsConsent, TipsSignal
from hearth.tips.repository import TipRepository
from hearth.tips.schemas import FeedbackIn, FeedbackOut
from hearth.tips.sources.base import SourceError
from hearth.tips.sync import Connectors

log = logging.getLogger("hearth.tips")
MAX_SNOOZE = timedelta(days=365)


class FeedbackService:
    def __init__(self, db: Database, bus: EventBus, registry: Registry, connectors: Connectors) -> None:
        self.db = db
        self.bus = bus
        self.registry = registry
        self.connectors = connectors

    async def give(self, *, user_id: str, tip_id: str, body: FeedbackIn) -> FeedbackOut:
        now = utcnow()
        if body.until is not None and not (now < body.until <= now + MAX_SNOOZE):
            raise HearthError(
                422, "until: must be in the future and within a year", param="until", code="invalid_value"
            )
        async with self.db.sessions() as s:
            tip = await TipRepository(s, owner_id=user_id).get_or_404(tip_id)
            if tip.expires_at <= now:
                raise HearthError(
                    409,
                    f"tip {tip_id!r} expired at {tip.expires_at.isoformat()}; "
                    "ask for a new one (POST /api/tips/next)",
                    code="tip_expired",
                )
            if tip.status in ("done", "dismissed"):
                raise HearthError(409, f"tip {tip_id!r} is already {tip.status}", code="tip_closed")
            can_write = await s.scalar(
                select(TipsConsent.granted).where(
                    TipsConsent.user_id == user_id, TipsConsent.key == "tasks.write"
                )
            )
            ref = tip.subject_ref
        source_closed, source_error = False, None
        if body.action == "done" and ref:
            if not can_write:
                source_error = "not marked done at the source: grant the tasks.write consent for that"
            else:
                try:
                    await self.connectors.close_task(user_id=user_id, ref=ref)
                    source_closed = True
                except SourceError as exc:
                    source_error = str(exc)
        async with self.db.transaction() as s:
            tip = await TipRepository(s, owner_id=user_id).get_or_404(tip_id, lock=True)
            tip.status = {"done": "done", "snooze": "snoozed", "dismiss": "dismissed"}[body.action]
            tip.snoozed_until = body.until
            s.add(
                TipFeedback(
                    id=new_id(),
                    tip_id=tip.id,
                    user_id=user_id,
                    action=body.action,
                    until=body.until,
                    source_closed=source_closed,
                    created_at=now,
                )
            )
            stale_kinds = {"tip.feedback"}
            if body.action == "done" and ref:
                connector_id, _, external_id = ref.partition(":")
                # Done here: the task leaves the open list at once, whatever the source said.
                await s.execute(
                    delete(TipsSignal).where(
                        TipsSignal.user_id == user_id,
                        TipsSignal.connector_id == connector_id,
                        TipsSignal.kind == "task.open",
                        TipsSignal.external_id == external_id,
                    )
                )
                stale_kinds |= {"task.open", "task.completed"}
            stale = [a.id for a in self.registry if stale_kinds & set(a.manifest.inputs)]
            if stale:
                await s.execute(
                    delete(AgentOutput).where(AgentOutput.user_id == user_id, AgentOutput.agent_id.in_(stale))
                )
            await self.bus.publish(
                TipFeedbackGiven(
                    user_id=user_id, tip_id=tip.id, action=body.action, source_closed=source_closed
                ),
                session=s,
            )
        return FeedbackOut(
            tip_id=tip_id,
            action=body.action,
            until=body.until,
            source_closed=source_closed,
            source_error=source_error,
        )
