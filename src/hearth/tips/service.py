"""The tips context's service behind `tips.ports.SERVICE`: one façade over the profile, connectors, the
agent registry and pre-compute, the orchestrator and feedback. Routes and the CLI stay thin."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hearth.gateway.service import SYSTEM, Caller
from hearth.platform.db import Database
from hearth.tips import privacy
from hearth.tips.eligibility import why_not
from hearth.tips.feedback import FeedbackService
from hearth.tips.manifest import Registry
from hearth.tips.models import AgentOutput, TipScore
from hearth.tips.orchestrator import Orchestrator
from hearth.tips.precompute import Precompute
from hearth.tips.profile import ProfileService, snapshots
from hearth.tips.scheduler import Scheduler
from hearth.tips.schemas import AgentOut, FeedbackIn, FeedbackOut, OutputOut, TipOut
from hearth.tips.sync import Connectors

if TYPE_CHECKING:
    from hearth.notify.ports import Notifier

# The consent that lets a tip go out on each loud channel; the in-app inbox needs none.
CHANNEL_CONSENTS = {"email": "notify.email", "webpush": "notify.push"}


class TipsService:
    def __init__(
        self,
        *,
        db: Database,
        registry: Registry,
        profile: ProfileService,
        connectors: Connectors,
        precompute: Precompute,
        orchestrator: Orchestrator,
        feedback: FeedbackService,
        scheduler: Scheduler,
        notifier: Notifier | None = None,
    ) -> None:
        self.db = db
        self.notifier = notifier
        self.registry = registry
        self.profile = profile
        self.connectors = connectors
        self.precompute = precompute
        self.orchestrator = orchestrator
        self.feedback = feedback
        self.scheduler = scheduler

    async def agents(self, *, user_id: str) -> list[AgentOut]:
        """The registered agents and whether each may contribute to this user's tips now."""
        async with self.db.sessions() as s:
            snap = await self.profile.snapshot(s, user_id)
        out = []
        for agent in self.registry:
            m = agent.manifest
            reason = why_not(agent, snap)
            out.append(
                AgentOut(
                    id=m.id,
                    version=m.version,
                    description=m.description,
                    consents=m.consents,
                    inputs=m.inputs,
                    schedule_minutes=m.schedule.every_minutes,
                    ttl_minutes=m.ttl_minutes,
                    priority=m.priority,
                    silenced_by=m.silenced_by,
                    enabled=m.enabled,
                    output_schema=m.output_schema,
                    eligible=reason is None,
                    reason=reason,
                )
            )
        return out

    async def outputs(self, *, user_id: str) -> list[OutputOut]:
        """The user's stored agent outputs (fresh or not), highest priority first."""
        async with self.db.sessions() as s:
            rows = await s.scalars(
                select(AgentOutput)
                .where(AgentOutput.user_id == user_id)
                .order_by(AgentOutput.priority.desc(), AgentOutput.agent_id)
            )
            return [OutputOut.model_validate(r) for r in rows]

    async def next_tip(
        self, *, user_id: str, caller: Caller = SYSTEM, candidates: int = 1, notify: bool = False
    ) -> TipOut:
        tip = await self.orchestrator.next(user_id=user_id, caller=caller, candidates=candidates)
        if notify and self.notifier is not None:
            tip.notified = await self._notify(user_id, tip)
        return tip

    async def _notify(self, user_id: str, tip: TipOut) -> list[str]:
        """Send the tip on the channels the user consented to; the same wording is sent once per window."""
        async with self.db.sessions() as s:
            granted = (await snapshots(s, [user_id], sorted(CHANNEL_CONSENTS.values())))[user_id].granted
        channels = {"inapp"} | {ch for ch, key in CHANNEL_CONSENTS.items() if key in granted}
        digest = hashlib.sha256(" ".join(tip.text.lower().split()).encode()).hexdigest()[:16]
        assert self.notifier is not None
        result = await self.notifier.notify(
            user_id,
            topic="tip",
            dedupe_key=f"tip:{digest}",
            title="A tip from Hearth",
            body=tip.text,
            url="/tips",
            channels=channels,
        )
        return [f"{d.channel}: {d.status}" for d in result.deliveries]

    async def tips(self, *, user_id: str, limit: int) -> list[TipOut]:
        async with self.db.sessions() as s:
            rows = await s.scalars(
                select(TipScore)
                .where(TipScore.user_id == user_id)
                .order_by(TipScore.created_at.desc(), TipScore.id)
                .limit(limit)
            )
            return [TipOut.model_validate(r) for r in rows]

    async def give_feedback(self, *, user_id: str, tip_id: str, body: FeedbackIn) -> FeedbackOut:
        return await self.feedback.give(user_id=user_id, tip_id=tip_id, body=body)

    # -- privacy (the integrator plugs these into GET /api/me/export and DELETE /api/me) --------------------

    async def export_user(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every tips row of the user, JSON-able; vault entries without their secret."""
        return await privacy.export_user(self.db, user_id)

    async def erase_user(self, user_id: str) -> None:
        """Delete every tips row of the user, vault entries included."""
        await privacy.erase_user(self.db, user_id)
