"""Pre-compute: run an agent over users in batches and store one snippet per user in `agent_outputs`.

Per batch of users a handful of statements, whatever the batch size: the profile rows, the active contexts,
the granted consents, one query per input kind, then one DELETE and one multi-row INSERT of the outputs.
Agent functions are pure (see `agentkit`), so the rest is Python over rows already in memory."""

from __future__ import annotations

import logging
import time as clock
from collections import defaultdict
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.events.bus import EventBus
from hearth.platform.db import Database, new_id, utcnow
from hearth.platform.kit.time import as_utc
from hearth.tips.agentkit import AgentInput, AgentResult, Event, Feedback, Task
from hearth.tips.eligibility import why_not
from hearth.tips.events import AgentOutputsComputed
from hearth.tips.locks import AgentLocks
from hearth.tips.manifest import Agent, Registry
from hearth.tips.models import (
    AgentOutput,
    AgentRun,
    TipFeedback,
    TipScore,
    TipsPreferences,
    TipsSignal,
)
from hearth.tips.profile import Snapshot, snapshots

log = logging.getLogger("hearth.tips")
BATCH = 500  # users per batch: one IN (...) under every database's bound-parameter cap
HISTORY = timedelta(days=30)  # how far back tip.feedback and task.completed inputs reach


@dataclass
class RunResult:
    agent_id: str
    agent_version: str
    users: int = 0  # eligible users the agent ran for
    written: int = 0  # outputs stored (an agent may have nothing to say)
    errors: int = 0  # users whose run raised or returned output its schema refuses
    seconds: float = 0.0


class Precompute:
    def __init__(
        self, db: Database, bus: EventBus, registry: Registry, locks: AgentLocks, *, batch_size: int = BATCH
    ) -> None:
        self.batch_size = batch_size
        self.db = db
        self.bus = bus
        self.registry = registry
        self.locks = locks

    async def drop_stale_versions(self) -> int:
        """Delete outputs written by another version of each agent (a new version invalidates them)."""
        deleted = 0
        async with self.db.transaction() as s:
            for agent in self.registry:
                result = await s.execute(
                    delete(AgentOutput).where(
                        AgentOutput.agent_id == agent.id, AgentOutput.agent_version != agent.manifest.version
                    )
                )
                deleted += int(result.rowcount or 0)  # type: ignore[attr-defined]
        return deleted

    async def run_due(self, now: datetime | None = None) -> list[RunResult]:
        """Run every agent whose schedule says so, over all users, in one pass (the due agents share each
        batch's reads and writes); agents another process is running are skipped (it holds their lock)."""
        now = now or utcnow()
        async with AsyncExitStack() as stack:
            due = []
            for agent in self.registry:
                if (
                    agent.manifest.enabled
                    and await stack.enter_async_context(self.locks.hold(agent.id, wait=False))
                    and await self._due(agent, now)
                ):
                    due.append(agent)
            return await self._run_locked(due, None, now) if due else []

    async def run(
        self,
        agent: Agent,
        *,
        user_ids: list[str] | None = None,
        now: datetime | None = None,
        only_if_due: bool = False,
    ) -> RunResult | None:
        """Run `agent` for `user_ids` (None: every tips user). A pass over everyone gives up at once when
        another process holds the agent's lock; a pass for given users waits for it."""
        async with self.locks.hold(agent.id, wait=user_ids is not None) as held:
            if not held:
                return None
            now = now or utcnow()
            if only_if_due and not await self._due(agent, now):
                return None
            return (await self._run_locked([agent], user_ids, now))[0]

    async def run_for(
        self, agents: list[Agent], user_ids: list[str], now: datetime | None = None, *, wait: bool = True
    ) -> list[RunResult]:
        """Run `agents` for these users in one pass. With `wait`, waits for each agent's lock (taken in id
        order, so two waiting passes cannot deadlock); without, leaves out the agents another run holds."""
        async with AsyncExitStack() as stack:
            held = [
                agent
                for agent in sorted(agents, key=lambda a: a.id)
                if await stack.enter_async_context(self.locks.hold(agent.id, wait=wait))
            ]
            return await self._run_locked(held, user_ids, now or utcnow()) if held else []

    async def _due(self, agent: Agent, now: datetime) -> bool:
        async with self.db.sessions() as s:
            last = await s.scalar(
                select(func.max(AgentRun.started_at)).where(
                    AgentRun.agent_id == agent.id,
                    AgentRun.scope == "all",
                    AgentRun.agent_version == agent.manifest.version,
                )
            )
        if last is None:
            return True
        return as_utc(last) + timedelta(minutes=agent.manifest.schedule.every_minutes) <= now

    async def _run_locked(
        self, agents: list[Agent], user_ids: list[str] | None, now: datetime
    ) -> list[RunResult]:
        results = {a.id: RunResult(a.id, a.manifest.version) for a in agents}
        scope = "all" if user_ids is None else (user_ids[0] if len(user_ids) == 1 else "some")
        runs = {
            a.id: AgentRun(
                id=new_id(), agent_id=a.id, agent_version=a.manifest.version, scope=scope, started_at=now
            )
            for a in agents
        }
        async with self.db.transaction() as s:
            s.add_all(runs.values())
        if user_ids is None:
            after = ""
            while True:
                async with self.db.sessions() as s:
                    batch = list(
                        await s.scalars(
                            select(TipsPreferences.user_id)
                            .where(TipsPreferences.user_id > after)
                            .order_by(TipsPreferences.user_id)
                            .limit(self.batch_size)
                        )
                    )
                if not batch:
                    break
                await self._batch(agents, batch, now, results)
                after = batch[-1]
        else:
            for i in range(0, len(user_ids), self.batch_size):
                await self._batch(agents, user_ids[i : i + self.batch_size], now, results)
        async with self.db.transaction() as s:
            finished = utcnow()
            for agent_id, run in runs.items():
                row = await s.get(AgentRun, run.id)
                result = results[agent_id]
                if row is not None:
                    row.finished_at = finished
                    row.users, row.written, row.errors = result.users, result.written, result.errors
            await self.bus.publish_many(
                [
                    AgentOutputsComputed(
                        agent_id=r.agent_id,
                        agent_version=r.agent_version,
                        users=r.users,
                        written=r.written,
                        errors=r.errors,
                    )
                    for r in results.values()
                ],
                session=s,
            )
        return list(results.values())

    async def _batch(
        self, agents: list[Agent], user_ids: list[str], now: datetime, results: dict[str, RunResult]
    ) -> None:
        """One batch of users for every agent of the pass: the reads once, then one DELETE and one INSERT."""
        consents = sorted({key for a in agents for key in a.manifest.consents})
        kinds = sorted({kind for a in agents for kind in a.manifest.inputs})
        async with self.db.transaction() as s:
            snaps = await snapshots(s, user_ids, consents)
            eligible = {a.id: [u for u in user_ids if why_not(a, snaps[u]) is None] for a in agents}
            readers = {u for a in agents if a.manifest.inputs for u in eligible[a.id]}
            inputs = await load_inputs(s, [u for u in user_ids if u in readers], kinds, now)
            rows: list[dict[str, Any]] = []
            for agent in agents:
                started = clock.perf_counter()
                rows.extend(self._outputs(agent, eligible[agent.id], snaps, inputs, now, results[agent.id]))
                results[agent.id].seconds += clock.perf_counter() - started  # the agent's own work
            await s.execute(
                delete(AgentOutput).where(
                    AgentOutput.agent_id.in_([a.id for a in agents]), AgentOutput.user_id.in_(user_ids)
                )
            )
            if rows:
                await s.execute(insert(AgentOutput.__table__), rows)  # Core executemany: no ORM bookkeeping

    def _outputs(
        self,
        agent: Agent,
        users: list[str],
        snaps: dict[str, Snapshot],
        inputs: dict[str, dict[str, list[Any]]],
        now: datetime,
        result: RunResult,
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        expires = now + timedelta(minutes=agent.manifest.ttl_minutes)
        for user_id in users:
            snap = snaps[user_id]
            start, end = snap.work_hours
            inp = AgentInput(
                user_id=user_id,
                now=now,
                timezone=snap.timezone,
                work_start=start,
                work_end=end,
                signals={kind: inputs[kind].get(user_id, []) for kind in agent.manifest.inputs},
            )
            try:
                out = agent.run(inp)
                if out is not None and not isinstance(out, AgentResult):
                    raise TypeError(f"returned {type(out).__name__}, not AgentResult")
                if out is not None:
                    agent.validate(out.data)  # raises when the output breaks the manifest's schema
            except Exception as exc:  # one user's bad data must not stop the batch
                result.errors += 1
                log.warning("tips agent %s failed for user %s: %s", agent.id, user_id, exc)
                continue
            if out is None or not out.lines:
                continue
            rows.append(
                {
                    "id": new_id(),
                    "user_id": user_id,
                    "agent_id": agent.id,
                    "agent_version": agent.manifest.version,
                    "priority": float(agent.manifest.priority if out.priority is None else out.priority),
                    "lines": [{"text": ln.text, "ref": ln.ref, "title": ln.title} for ln in out.lines],
                    "data": out.data,
                    "computed_at": now,
                    "expires_at": expires,
                }
            )
        result.users += len(users)
        result.written += len(rows)
        return rows


async def load_inputs(
    s: AsyncSession, user_ids: list[str], kinds: list[str], now: datetime
) -> dict[str, dict[str, list[Any]]]:
    """The signals of `kinds` for these users, one statement per kind: {kind: {user_id: [signal, …]}}."""
    out: dict[str, dict[str, list[Any]]] = {kind: defaultdict(list) for kind in kinds}
    if not user_ids:
        return out
    since = now - HISTORY
    for kind in kinds:
        bucket = out[kind]
        if kind == "tip.feedback":
            rows = await s.execute(
                select(
                    TipFeedback.user_id, TipFeedback.action, TipFeedback.created_at, TipScore.subject_title
                )
                .join(TipScore, TipScore.id == TipFeedback.tip_id)
                .where(TipFeedback.user_id.in_(user_ids), TipFeedback.created_at >= since)
            )
            for user_id, action, at, subject in rows.all():
                bucket[user_id].append(Feedback(action, at, subject))
            continue
        stmt = select(
            TipsSignal.user_id,
            TipsSignal.connector_id,
            TipsSignal.external_id,
            TipsSignal.title,
            TipsSignal.project,
            TipsSignal.due_at,
            TipsSignal.at,
            TipsSignal.priority,
        ).where(TipsSignal.user_id.in_(user_ids), TipsSignal.kind == kind)
        if kind == "task.completed":
            stmt = stmt.where(TipsSignal.at >= since)
        for user_id, connector_id, ext, title, project, due_at, at, priority in (await s.execute(stmt)).all():
            ref = f"{connector_id}:{ext}"
            if kind == "calendar.event":
                bucket[user_id].append(Event(ref, title, at, due_at))
            else:
                bucket[user_id].append(Task(ref, title, project, due_at, at, priority))
    return out
