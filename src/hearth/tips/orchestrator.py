"""The orchestrator behind POST /api/tips/next: eligible agents' fresh snippets → versioned prompt →
`tip-generator` → one tip, stored in `tip_scores` with the agents that contributed, the prompt version, the
model and the time spent assembling versus generating.

When the model's words are unusable (empty, off-format, a repeat of a tip the user dismissed or snoozed,
or naming a task they put aside) or the model is unavailable, a deterministic fallback builds the tip from
the highest-priority snippet and says so (`fallback`, `fallback_reason`)."""

from __future__ import annotations

import time as clock
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.events.bus import EventBus
from hearth.gateway.service import SYSTEM, Caller, Gateway
from hearth.platform.db import Database, new_id, utcnow
from hearth.platform.errors import HearthError
from hearth.tips import prompt
from hearth.tips.eligibility import why_not
from hearth.tips.events import TipServed
from hearth.tips.manifest import Registry
from hearth.tips.models import AgentOutput, TipScore
from hearth.tips.precompute import Precompute
from hearth.tips.profile import ProfileService, Snapshot, ensure_profile
from hearth.tips.schemas import TipOut


@dataclass
class Blocked:
    """What must not come back: tasks snoozed (until their time), dismissed or done, and the texts of
    tips dismissed recently or snoozed now."""

    refs: set[str] = field(default_factory=set)
    titles: set[str] = field(default_factory=set)
    fingerprints: dict[str, str] = field(default_factory=dict)  # fingerprint -> "dismissed" | "snoozed"


@dataclass
class Assembled:
    snap: Snapshot
    snippets: list[prompt.Snippet]
    blocked: Blocked
    messages: list[dict[str, str]]


class Orchestrator:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        gateway: Gateway,
        registry: Registry,
        precompute: Precompute,
        profile: ProfileService,
        *,
        alias: str = "tip-generator",
        judge_alias: str = "judge",
        tip_ttl: timedelta = timedelta(hours=4),
        dismiss_window: timedelta = timedelta(days=30),
        temperature: float = 0.7,
    ) -> None:
        self.db = db
        self.bus = bus
        self.gateway = gateway
        self.registry = registry
        self.precompute = precompute
        self.profile = profile
        self.alias = alias
        self.judge_alias = judge_alias
        self.tip_ttl = tip_ttl
        self.dismiss_window = dismiss_window
        self.temperature = temperature

    # -- assembly -----------------------------------------------------------------------------------------

    async def refresh(self, user_id: str, now: datetime) -> None:
        """Run, for this user, the eligible agents that have no fresh output and no run in progress."""
        async with self.db.transaction() as s:
            await ensure_profile(s, user_id)
        async with self.db.sessions() as s:
            snap = await self.profile.snapshot(s, user_id)
            fresh = set(
                await s.scalars(
                    select(AgentOutput.agent_id).where(
                        AgentOutput.user_id == user_id, AgentOutput.expires_at > now
                    )
                )
            )
        missing = [a for a in self.registry if a.id not in fresh and why_not(a, snap) is None]
        # Without waiting: an agent in the middle of a scheduled pass over every user is left out of this
        # tip rather than holding the request for the whole pass (its output is there for the next one).
        await self.precompute.run_for(missing, [user_id], now, wait=False)

    async def assemble(self, user_id: str, now: datetime) -> Assembled:
        """Profile + eligible fresh snippets (without blocked tasks) → the prompt. Reads only: fast."""
        async with self.db.sessions() as s:
            snap = await self.profile.snapshot(s, user_id)
            eligible = {a.id: a for a in self.registry if why_not(a, snap) is None}
            rows = (
                await s.scalars(
                    select(AgentOutput).where(
                        AgentOutput.user_id == user_id,
                        AgentOutput.agent_id.in_(list(eligible)),
                        AgentOutput.expires_at > now,
                    )
                )
            ).all()
            blocked = await self._blocked(s, user_id, now)
        snippets = []
        for row in rows:
            agent = eligible[row.agent_id]
            if row.agent_version != agent.manifest.version:
                continue  # written by an older version of the agent: stale
            lines = [ln for ln in row.lines if not ln.get("ref") or ln["ref"] not in blocked.refs]
            if lines:  # a snippet whose every line is about a task put aside says nothing now
                snippets.append(prompt.Snippet(row.agent_id, row.priority, lines))
        snippets.sort(key=lambda sn: (-sn.priority, sn.agent_id))
        return Assembled(
            snap, snippets, blocked, prompt.messages(snap.preferences, snap.active_context, snippets)
        )

    async def _blocked(self, s: AsyncSession, user_id: str, now: datetime) -> Blocked:
        blocked = Blocked()
        rows = await s.execute(
            select(
                TipScore.status,
                TipScore.subject_ref,
                TipScore.subject_title,
                TipScore.fingerprint,
                TipScore.created_at,
            ).where(
                TipScore.user_id == user_id,
                or_(
                    TipScore.status.in_(("dismissed", "done")),
                    (TipScore.status == "snoozed") & (TipScore.snoozed_until > now),
                ),
            )
        )
        since = now - self.dismiss_window
        for status, ref, title, fp, created in rows.all():
            if ref:
                blocked.refs.add(ref)
                if title:
                    blocked.titles.add(title.lower())
            if status == "snoozed" or (status == "dismissed" and created >= since):
                blocked.fingerprints[fp] = "snoozed" if status == "snoozed" else "dismissed"
        return blocked

    # -- the tip ------------------------------------------------------------------------------------------

    async def next(self, *, user_id: str, caller: Caller = SYSTEM, candidates: int = 1) -> TipOut:
        started = clock.perf_counter()
        now = utcnow()
        await self.refresh(user_id, now)
        t0 = clock.perf_counter()
        assembled = await self.assemble(user_id, now)
        assembly_ms = (clock.perf_counter() - t0) * 1000
        if not assembled.snippets:
            raise HearthError(
                404,
                "no tip right now: no eligible agent has anything to say (grant consents, connect a source, "
                "or wait for snoozed tips)",
                code="no_tip",
            )
        t1 = clock.perf_counter()
        generated, model, model_error = await self._generate(assembled, caller, candidates)
        model_ms = (clock.perf_counter() - t1) * 1000
        chosen = _best(generated)
        if chosen is not None:
            text = chosen["text"]
            subject = _subject(text, assembled.snippets)
            contributing = [s.agent_id for s in assembled.snippets]
            fallback, reason, score = False, None, chosen.get("score")
        else:
            reason = model_error or next(
                (c["reason"] for c in generated if c.get("reason")), "unusable output"
            )
            text, subject, contributing = _fallback(assembled.snippets)
            fallback, score = True, None
        tip = TipScore(
            id=new_id(),
            user_id=user_id,
            text=text,
            fingerprint=prompt.fingerprint(text),
            subject_ref=subject[0] if subject else None,
            subject_title=subject[1] if subject else None,
            contributing_agents=contributing,
            prompt_version=prompt.PROMPT_VERSION,
            model=model,
            fallback=fallback,
            fallback_reason=reason,
            candidates=generated,
            score=score,
            latency_ms=round((clock.perf_counter() - started) * 1000, 2),
            assembly_ms=round(assembly_ms, 3),
            model_ms=round(model_ms, 2),
            status="open",
            expires_at=now + self.tip_ttl,
            created_at=now,
        )
        async with self.db.transaction() as s:
            s.add(tip)
            await s.flush()
            await self.bus.publish(
                TipServed(
                    user_id=user_id,
                    tip_id=tip.id,
                    contributing_agents=contributing,
                    prompt_version=tip.prompt_version,
                    model=model,
                    fallback=fallback,
                    latency_ms=tip.latency_ms,
                ),
                session=s,
            )
        return TipOut.model_validate(tip)

    async def _generate(
        self, assembled: Assembled, caller: Caller, n: int
    ) -> tuple[list[dict[str, Any]], str, str | None]:
        """Up to `n` candidates from the model, each checked; with more than one usable, the judge grades."""
        out: list[dict[str, Any]] = []
        model = self.alias
        max_tokens = prompt.MAX_TOKENS.get(assembled.snap.preferences.tip_length, 48)
        for i in range(n):
            body = {
                "model": self.alias,
                "messages": assembled.messages,
                "max_tokens": max_tokens,
                "temperature": self.temperature,
                "seed": i,
            }
            try:
                response, served = await self.gateway.chat_served(body, caller)
            except HearthError as exc:
                return out, model, f"model unavailable: {exc.message}"
            model = f"{self.alias}:{served.deployment}"
            raw = str(((response.get("choices") or [{}])[0].get("message") or {}).get("content") or "")
            text, reason = prompt.clean(raw)
            if text is not None:
                reason = _repeat(text, assembled.blocked)
            out.append(
                {"text": text if reason is None else raw[:300], "usable": reason is None, "reason": reason}
            )
        usable = [c for c in out if c["usable"]]
        if len(usable) > 1:
            for c in usable:
                body = {
                    "model": self.judge_alias,
                    "messages": prompt.judge_messages(assembled.messages, c["text"]),
                    "max_tokens": 4,
                    "temperature": 0,
                }
                try:
                    graded = await self.gateway.chat(body, caller)
                    c["score"] = prompt.judge_score(
                        str(((graded.get("choices") or [{}])[0].get("message") or {}).get("content") or "")
                    )
                except HearthError:
                    c["score"] = None
        return out, model, None


def _repeat(text: str, blocked: Blocked) -> str | None:
    why = blocked.fingerprints.get(prompt.fingerprint(text))
    if why:
        return f"repeats a tip you {why}"
    lowered = text.lower()
    if any(title and title in lowered for title in blocked.titles):
        return "names a task you snoozed, dismissed or did"
    return None


def _best(candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    usable = [c for c in candidates if c["usable"]]
    if not usable:
        return None
    return max(usable, key=lambda c: c.get("score") or 0.0)  # max keeps the first of equals


def _subject(text: str, snippets: list[prompt.Snippet]) -> tuple[str, str] | None:
    """The task the tip is about: the first task line (highest priority first) whose title it names."""
    lowered = text.lower()
    for snippet in snippets:
        for line in snippet.lines:
            if line.get("ref") and line.get("title") and line["title"].lower() in lowered:
                return line["ref"], line["title"]
    return None


def _fallback(snippets: list[prompt.Snippet]) -> tuple[str, tuple[str, str] | None, list[str]]:
    """The tip from the highest-priority snippet: its first task line if it has one, else its first line."""
    top = snippets[0]
    line = next((ln for ln in top.lines if ln.get("ref")), top.lines[0])
    text = line["text"]
    if line.get("ref") and line.get("title"):
        text = f"Start with this: {text}"
        return text, (line["ref"], line["title"]), [top.agent_id]
    return text, None, [top.agent_id]
