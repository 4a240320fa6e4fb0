"""Every change of a run's or a step's status, each in one transaction with its events (the outbox).

Workers of any number of server processes share the work through the database: a pending run is promoted
by whoever locks it first, a ready step is claimed by one worker only (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, plus a compare-and-set `UPDATE … WHERE status = 'ready'` that also holds on SQLite), and every
completion re-reads the step under a lock and drops a result whose claim it no longer holds.

Lock order, everywhere: the run row, then its step rows; so a cancel and a completion cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.events.bus import EventBus
from hearth.platform.db import Database, new_id
from hearth.platform.kit.time import utcnow
from hearth.workflows import states
from hearth.workflows.events import (
    ArtifactProduced,
    PipelineRunCompleted,
    StepCompleted,
    StepStarted,
)
from hearth.workflows.models import Artifact, PipelineRow, Run, StepLog, StepRow

MAX_ERROR = 4000  # characters of an error kept on a step or run


@dataclass
class Claimed:
    """A step a worker holds: everything needed to run it without another query."""

    run_id: str
    step_id: str
    name: str
    attempt: int
    retries: int
    timeout: float | None
    owner_id: str
    pipeline: str
    params: dict[str, Any]
    spec: dict[str, Any]  # the step's stored definition (target, inline, outputs, artifacts)
    upstream: dict[str, dict[str, Any]]  # direct dependencies' outputs
    inputs: dict[str, str]  # "step.artifact" or "params.name" → URI


@dataclass
class Outcome:
    """How an attempt ended. `status`: succeeded, failed, cancelled (the run ended), or requeued (this
    server is stopping: the attempt is given back without using up a retry)."""

    status: str
    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    artifacts: list[tuple[str, str, Any]] = field(default_factory=list)  # (name, type, Stored)
    error: str | None = None


def _short(text: str | None) -> str | None:
    return None if text is None else text[:MAX_ERROR]


class Engine:
    def __init__(self, db: Database, bus: EventBus, *, synchronous_commit: bool = True) -> None:
        """True (the default): every transition waits for the WAL flush, as every other commit does.
        `synchronous_commit=False`: on PostgreSQL, the executor's step transitions (promote,
        claim, completion) commit without waiting for the WAL flush (`synchronous_commit = off` for those
        transactions only): the flush was most of a no-op step's cost (~3 ms quiet, tens under disk load).
        A crash of the server process loses nothing; a crash of PostgreSQL itself may lose the last
        transitions (up to 3 × wal_writer_delay, 0.6 s by default), all of them with their outbox events,
        never a part of one: their steps are then found running with a stale heartbeat and resumed, as
        after a server crash (so they may run again). Runs created, cancelled or failed by a user are
        always durable. On a quiet disk both modes measure the same (docs/workflows.md)."""
        self.db = db
        self.bus = bus
        self.relaxed = not synchronous_commit and not db.is_sqlite
        self._definitions: dict[str, dict[str, Any]] = {}  # pipeline id → definition (immutable per id)

    def _relax(self, stmt: Any) -> Any:
        """The statement with `set_config('synchronous_commit', 'off', true)` as an extra column when
        transitions commit asynchronously: the setting rides on a query the transaction makes anyway (a
        `SET LOCAL` would be one more round trip); `true` scopes it to this transaction."""
        if self.relaxed:
            return stmt.add_columns(func.set_config("synchronous_commit", "off", true()))
        return stmt

    async def definition(self, session: AsyncSession, pipeline_id: str) -> dict[str, Any]:
        found = self._definitions.get(pipeline_id)
        if found is None:
            row = await session.get(PipelineRow, pipeline_id)
            assert row is not None
            found = self._definitions[pipeline_id] = row.definition
        return found

    # -- starting -----------------------------------------------------------------------------------

    async def promote(self, *, limit: int = 50, run_id: str | None = None) -> int:
        """Pending local runs → running, their first steps → ready (one transaction); how many."""
        promoted, _ = await self.promote_and_claim(limit=limit, run_id=run_id)
        return promoted

    async def promote_and_claim(
        self, *, limit: int = 50, run_id: str | None = None, worker: str | None = None, take: int = 0
    ) -> tuple[int, list[Claimed]]:
        """`promote`, and in the same transaction start up to `take` of the first steps it made ready for
        `worker`: a new run's first step costs no claim transaction of its own. Those rows became ready in
        this uncommitted transaction, so no other worker can hold them: no compare-and-set is needed."""
        async with self.db.transaction() as s:
            stmt = select(Run).where(Run.status == "pending")
            stmt = stmt.where(Run.id == run_id) if run_id else stmt.where(Run.executor == "local")
            runs = list(
                (
                    await s.scalars(
                        self._relax(stmt)
                        .order_by(Run.created_at)
                        .limit(limit)
                        .with_for_update(of=Run, skip_locked=True)
                    )
                ).all()
            )
            if not runs:
                return 0, []
            now = utcnow()
            promoted: list[Run] = []
            for run in runs:
                states.check("run", run.status, "running")
                # Compare-and-set: on SQLite (no row locks) another worker may have promoted it meanwhile.
                taken = await s.execute(
                    update(Run)
                    .where(Run.id == run.id, Run.status == "pending")
                    .values(status="running", started_at=now)
                    .execution_options(synchronize_session=False)
                )
                if taken.rowcount == 1:  # type: ignore[attr-defined]
                    promoted.append(run)
            if not promoted:
                return 0, []
            by_id = {run.id: run for run in promoted}
            steps = (
                await s.scalars(
                    select(StepRow)
                    .where(StepRow.run_id.in_(list(by_id)))
                    .order_by(StepRow.run_id, StepRow.position)
                )
            ).all()
            roots: list[tuple[StepRow, Run]] = []
            for step in steps:
                if not step.after and step.status == "pending":
                    states.transition(step, "ready")
                    step.ready_at = now
                    roots.append((step, by_id[step.run_id]))
            # Oldest runs first, as the claim query orders them.
            order = {run.id: i for i, run in enumerate(promoted)}
            roots.sort(key=lambda pair: order[pair[1].id])
            claimed: list[Claimed] = []
            if worker is not None and take > 0 and roots:
                events: list[Any] = []
                for step, run in roots[:take]:
                    claimed.append(
                        await self._start_held(s, step, run, worker=worker, now=now, events=events)
                    )
                await self.bus.publish_many(events, s)
            return len(promoted), claimed

    async def claim(
        self, *, worker: str, limit: int, run_id: str | None = None, step: str | None = None
    ) -> list[Claimed]:
        """Take up to `limit` ready steps of running runs for `worker` (each step goes to one worker)."""
        if limit <= 0:
            return []
        async with self.db.transaction() as s:
            stmt = (
                select(StepRow, Run)
                .join(Run, Run.id == StepRow.run_id)
                .where(StepRow.status == "ready", Run.status == "running")
            )
            if run_id is not None:
                stmt = stmt.where(StepRow.run_id == run_id)
                if step is not None:
                    stmt = stmt.where(StepRow.name == step)
            else:
                stmt = stmt.where(Run.executor == "local")
            stmt = stmt.order_by(StepRow.ready_at).limit(limit).with_for_update(of=StepRow, skip_locked=True)
            rows = [(row[0], row[1]) for row in (await s.execute(self._relax(stmt))).all()]
            return await self._take(s, rows, worker=worker)

    async def _take(self, s: AsyncSession, rows: Any, *, worker: str) -> list[Claimed]:
        """Ready steps (locked by the caller) → running for `worker`, with their StepStarted events."""
        now = utcnow()
        claimed: list[Claimed] = []
        events = []
        for step_row, run in rows:
            states.check("step", step_row.status, "running")
            taken = await s.execute(
                update(StepRow)
                .where(StepRow.id == step_row.id, StepRow.status == "ready")
                .values(
                    status="running",
                    worker=worker,
                    attempt=StepRow.attempt + 1,
                    started_at=now,
                    heartbeat_at=now,
                    finished_at=None,
                )
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another worker took it between our read and our write (SQLite)
            claimed.append(await self._claimed(s, step_row, run, attempt=step_row.attempt + 1))
            events.append(
                StepStarted(run_id=run.id, step=step_row.name, attempt=step_row.attempt + 1, worker=worker)
            )
        if claimed:
            await self._fill_inputs(s, claimed)
            await self.bus.publish_many(events, s)
        return claimed

    async def _start_held(
        self, s: AsyncSession, step: StepRow, run: Run, *, worker: str, now: datetime, events: list[Any]
    ) -> Claimed:
        """A step this transaction made ready (so no other worker can have it) → running for `worker`,
        changed on the loaded row: written by the transaction's flush, with no statement of its own. The
        caller fills its inputs and publishes `events` (its StepStarted appended)."""
        states.transition(step, "running")
        step.worker = worker
        step.attempt += 1
        step.started_at = step.heartbeat_at = now
        events.append(StepStarted(run_id=run.id, step=step.name, attempt=step.attempt, worker=worker))
        return await self._claimed(s, step, run, attempt=step.attempt)

    async def _claimed(self, s: AsyncSession, step_row: StepRow, run: Run, *, attempt: int) -> Claimed:
        definition = await self.definition(s, run.pipeline_id)
        spec = next(x for x in definition["steps"] if x["name"] == step_row.name)
        spec = {
            **spec,
            "param_types": {n: p["type"] for n, p in definition["params"].items()},
            "any_artifacts": any(x["artifacts"] for x in definition["steps"]),
        }
        return Claimed(
            run_id=run.id,
            step_id=step_row.id,
            name=step_row.name,
            attempt=attempt,
            retries=step_row.retries,
            timeout=step_row.timeout,
            owner_id=run.owner_id,
            pipeline=run.pipeline,
            params=run.params,
            spec=spec,
            upstream={},
            inputs={},
        )

    async def _fill_inputs(
        self,
        s: AsyncSession,
        claimed: list[Claimed],
        loaded: dict[str, list[StepRow]] | None = None,
    ) -> None:
        """Upstream outputs (direct dependencies) and artifacts (every step before) of each claimed step.
        First steps have neither: no query for them (the no-op benchmark's roots, most single-step runs);
        `loaded` (run id → its step rows, as the completion holds them) saves the step query."""
        claimed = [c for c in claimed if c.spec["after"]]
        if not claimed:
            return
        run_ids = list({c.run_id for c in claimed})
        by_run: dict[str, dict[str, tuple[list[str], dict[str, Any]]]] = {}
        if loaded is not None and all(run_id in loaded for run_id in run_ids):
            for run_id in run_ids:
                by_run[run_id] = {x.name: (x.after, x.outputs) for x in loaded[run_id]}
        else:
            steps = (
                await s.execute(
                    select(StepRow.run_id, StepRow.name, StepRow.after, StepRow.outputs).where(
                        StepRow.run_id.in_(run_ids)
                    )
                )
            ).all()
            for run_id, name, after, outputs in steps:
                by_run.setdefault(run_id, {})[name] = (after, outputs)
        # Only runs whose pipeline declares artifacts can have any.
        with_artifacts = [c.run_id for c in claimed if c.spec.get("any_artifacts")]
        artifacts = []
        if with_artifacts:
            artifacts = (
                await s.execute(
                    select(Artifact.run_id, Artifact.step, Artifact.name, Artifact.uri).where(
                        Artifact.run_id.in_(with_artifacts)
                    )
                )
            ).all()
        for c in claimed:
            graph = by_run[c.run_id]
            ancestors: set[str] = set()
            todo = list(graph[c.name][0])
            while todo:
                name = todo.pop()
                if name not in ancestors:
                    ancestors.add(name)
                    todo.extend(graph[name][0])
            c.upstream = {name: graph[name][1] for name in graph[c.name][0]}
            c.inputs = {
                f"{step}.{name}": uri
                for run_id, step, name, uri in artifacts
                if run_id == c.run_id and step in ancestors
            }

    # -- finishing ----------------------------------------------------------------------------------

    async def complete(self, claimed: Claimed, outcome: Outcome, *, worker: str) -> str | None:
        """Record an attempt's end; returns the step's new status (None: the claim was lost meanwhile)."""
        status, _ = await self.complete_and_claim(claimed, outcome, worker=worker, limit=0)
        return status

    async def complete_and_claim(
        self, claimed: Claimed, outcome: Outcome, *, worker: str, limit: int
    ) -> tuple[str | None, list[Claimed]]:
        """`complete`, and in the same transaction claim up to `limit` of the steps it made ready (the
        run's next steps, whose rows it already holds): one transaction fewer per step on a run's path."""
        chained: list[Claimed] = []
        status = await self._complete(claimed, outcome, worker=worker, limit=limit, chained=chained)
        return status, chained

    async def _complete(
        self, claimed: Claimed, outcome: Outcome, *, worker: str, limit: int, chained: list[Claimed]
    ) -> str | None:
        # Round trips are most of a no-op step's cost on PostgreSQL, so the transaction makes few: lock the
        # run, lock all its steps (ours among them; the next steps' readiness needs them all), then one flush
        # writes every change and the outbox rows together. Lock order as everywhere: run, then steps.
        async with self.db.transaction() as s:
            run = await self._lock_run(s, claimed.run_id)
            if run is None:
                return None
            steps = await self._steps_locked(s, run)
            step = next((x for x in steps if x.id == claimed.step_id), None)
            if step is None or step.status != "running" or step.worker != worker:
                return None  # resumed elsewhere after our heartbeat went stale: its result wins
            await self._write_logs(s, claimed, outcome.logs)
            now = utcnow()
            step.heartbeat_at = None
            events: list[Any] = []
            if outcome.status == "requeued":
                states.transition(step, "ready")
                step.attempt -= 1
                step.ready_at, step.worker = now, None
                return step.status
            step.finished_at = now
            if run.status in states.RUN_TERMINAL or outcome.status == "cancelled":
                states.transition(step, "cancelled")
                step.error = f"cancelled: the run is {run.status}"
                events.append(
                    StepCompleted(run_id=run.id, step=step.name, attempt=step.attempt, status="cancelled")
                )
            elif outcome.status == "succeeded":
                states.transition(step, "succeeded")
                step.outputs = outcome.outputs
                step.error = None
                # Seed 000's order: StepCompleted, then each ArtifactProduced.
                events.append(
                    StepCompleted(run_id=run.id, step=step.name, attempt=step.attempt, status="succeeded")
                )
                for name, kind, stored in outcome.artifacts:
                    s.add(
                        Artifact(
                            id=new_id(),
                            run_id=run.id,
                            step=step.name,
                            name=name,
                            type=kind,
                            uri=stored.uri,
                            size=stored.size,
                            sha256=stored.sha256,
                            inline=False,
                        )
                    )
                    events.append(
                        ArtifactProduced(run_id=run.id, step=step.name, name=name, type=kind, uri=stored.uri)
                    )
                if outcome.metrics:
                    run.metrics = {**run.metrics, **outcome.metrics}
                ended, ready = self._advance(run, steps, now)
                if ended:
                    events += self._end_run(run, "succeeded", None, steps=steps)
                if ready and limit > 0 and run.status == "running":
                    # The next steps start in this transaction; their StepStarted follow this step's events
                    # in the same outbox write, so the stream keeps its order.
                    taken = [
                        await self._start_held(s, x, run, worker=worker, now=now, events=events)
                        for x in ready[:limit]
                    ]
                    await self._fill_inputs(s, taken, loaded={run.id: list(steps)})
                    chained += taken
            elif step.attempt <= step.retries:
                states.transition(step, "ready")
                step.ready_at, step.worker = now, None
                step.error = _short(outcome.error)
                events.append(
                    StepCompleted(
                        run_id=run.id,
                        step=step.name,
                        attempt=step.attempt,
                        status="failed",
                        retrying=True,
                        error=step.error,
                    )
                )
            else:
                states.transition(step, "failed")
                step.error = _short(outcome.error)
                events.append(
                    StepCompleted(
                        run_id=run.id, step=step.name, attempt=step.attempt, status="failed", error=step.error
                    )
                )
                tries = f" after {step.attempt} attempts" if step.attempt > 1 else ""
                events += self._end_run(
                    run, "failed", f"step {step.name!r} failed{tries}: {outcome.error}", steps=steps
                )
            await self.bus.publish_many(events, s)
            return step.status

    async def _write_logs(self, s: AsyncSession, claimed: Claimed, lines: list[str]) -> None:
        if lines:
            now = utcnow()
            s.add_all(
                StepLog(
                    run_id=claimed.run_id,
                    step=claimed.name,
                    attempt=claimed.attempt,
                    at=now,
                    line=line[:MAX_ERROR],
                )
                for line in lines
            )

    async def append_logs(self, claimed: Claimed, lines: list[str]) -> None:
        """Log lines of a running step, written as they come (the live view reads them)."""
        if lines:
            async with self.db.transaction() as s:
                await self._write_logs(s, claimed, lines)

    async def _lock_run(self, s: AsyncSession, run_id: str) -> Run | None:
        """The run row, locked until the transaction ends. SQLite has no row locks (FOR UPDATE is dropped)
        and begins a transaction only at its first write: a no-op write first takes its database-wide write
        lock, so two completions of one run are serialized there too and read each other's results (else
        both could see the other step still running, and neither would start the step after them)."""
        if self.db.is_sqlite:
            await s.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(status=Run.status)
                .execution_options(synchronize_session=False)
            )
        return await s.scalar(self._relax(select(Run).where(Run.id == run_id)).with_for_update(of=Run))

    @staticmethod
    def _advance(run: Run, steps: Iterable[StepRow], now: datetime) -> tuple[bool, list[StepRow]]:
        """After a step succeeded (the caller holds the run's step rows): steps whose dependencies all
        succeeded become ready (returned); True when every step has succeeded (the run's end)."""
        steps = list(steps)
        done = {x.name for x in steps if x.status == "succeeded"}
        if len(done) == len(steps):
            return True, []
        ready = []
        for x in steps:
            if x.status == "pending" and all(d in done for d in x.after):
                states.transition(x, "ready")
                x.ready_at = now
                ready.append(x)
        return False, ready

    async def _steps_locked(self, s: AsyncSession, run: Run) -> list[StepRow]:
        return list(
            (
                await s.scalars(
                    select(StepRow)
                    .where(StepRow.run_id == run.id)
                    .order_by(StepRow.position)
                    .with_for_update()
                )
            ).all()
        )

    def _end_run(self, run: Run, status: str, error: str | None, *, steps: Iterable[StepRow]) -> list[Any]:
        """The run to a final status; its steps that have not started are skipped (cancelled on a cancel).
        Steps running elsewhere see the final status at their next check and stop. The caller holds the
        run row and its step rows."""
        states.transition(run, status)
        run.error = _short(error)
        run.finished_at = utcnow()
        for x in steps:
            if x.status in ("pending", "ready"):
                states.transition(x, "cancelled" if status == "cancelled" else "skipped")
                x.finished_at = run.finished_at
        return [
            PipelineRunCompleted(
                run_id=run.id, owner_id=run.owner_id, pipeline=run.pipeline, status=status, error=run.error
            )
        ]

    async def cancel(self, s: AsyncSession, run: Run) -> None:
        """Cancel a pending or running run (the caller holds the run row); running steps stop shortly."""
        steps = await self._steps_locked(s, run)
        await self.bus.publish_many(self._end_run(run, "cancelled", "cancelled by its owner", steps=steps), s)

    async def fail_run(self, run_id: str, error: str) -> bool:
        """A run that cannot go on (e.g. its Argo submission failed) ends failed; False if it had ended."""
        async with self.db.transaction() as s:
            run = await s.scalar(select(Run).where(Run.id == run_id).with_for_update())
            if run is None or run.status in states.RUN_TERMINAL:
                return False
            steps = await self._steps_locked(s, run)
            await self.bus.publish_many(self._end_run(run, "failed", error, steps=steps), s)
            return True

    # -- liveness -----------------------------------------------------------------------------------

    async def heartbeat(self, *, worker: str) -> None:
        """Our running steps are alive. Rows another transaction holds (a completion) are skipped, never
        waited for: waiting on several rows in no set order deadlocked against completions on PostgreSQL."""
        async with self.db.transaction() as s:
            mine = (
                select(StepRow.id)
                .where(StepRow.worker == worker, StepRow.status == "running")
                .with_for_update(skip_locked=True)
            )
            await s.execute(
                update(StepRow)
                .where(StepRow.id.in_(mine.scalar_subquery()))
                .values(heartbeat_at=utcnow())
                .execution_options(synchronize_session=False)
            )

    async def ended(self, run_ids: Iterable[str]) -> set[str]:
        """Which of these runs have ended (their running steps must stop)."""
        ids = list(set(run_ids))
        if not ids:
            return set()
        async with self.db.sessions() as s:
            rows = await s.scalars(select(Run.id).where(Run.id.in_(ids), Run.status.in_(states.RUN_TERMINAL)))
            return set(rows.all())

    async def recover(
        self, *, stale_after: float, now: datetime | None = None, dead: Callable[[str], bool] | None = None
    ) -> int:
        """Steps left running by a worker that stopped sending heartbeats (a crashed server), or whose
        worker `dead(worker)` says is gone: resumed (ready again) while retries are left, else failed with
        their run. Returns how many."""
        cutoff = (now or utcnow()) - timedelta(seconds=stale_after)
        async with self.db.transaction() as s:
            running = (
                await s.execute(
                    select(StepRow.id, StepRow.run_id, StepRow.worker, StepRow.heartbeat_at)
                    .where(StepRow.status == "running")
                    .limit(1000)
                )
            ).all()
        stale = [
            (step_id, run_id)
            for step_id, run_id, worker, beat in running
            if (beat is not None and beat < cutoff) or (dead is not None and worker and dead(worker))
        ]
        gone = {step_id for step_id, _, worker, _ in running if dead is not None and worker and dead(worker)}
        count = 0
        for step_id, run_id in stale:
            async with self.db.transaction() as s:
                run = await s.scalar(select(Run).where(Run.id == run_id).with_for_update(skip_locked=True))
                step = await s.scalar(select(StepRow).where(StepRow.id == step_id).with_for_update())
                if run is None or step is None or step.status != "running" or step.heartbeat_at is None:
                    continue
                if step.heartbeat_at >= cutoff and step_id not in gone:
                    continue
                count += 1
                note = f"interrupted: worker {step.worker} stopped while running attempt {step.attempt}"
                s.add(StepLog(run_id=run.id, step=step.name, attempt=step.attempt, at=utcnow(), line=note))
                events: list[Any]
                if run.status in states.RUN_TERMINAL:
                    states.transition(step, "cancelled")
                    step.finished_at = utcnow()
                    events = []
                elif step.attempt <= step.retries:
                    states.transition(step, "ready")
                    step.ready_at, step.worker, step.error = utcnow(), None, note
                    events = [
                        StepCompleted(
                            run_id=run.id,
                            step=step.name,
                            attempt=step.attempt,
                            status="failed",
                            retrying=True,
                            error=note,
                        )
                    ]
                else:
                    states.transition(step, "failed")
                    step.error, step.finished_at = note, utcnow()
                    events = [
                        StepCompleted(
                            run_id=run.id, step=step.name, attempt=step.attempt, status="failed", error=note
                        )
                    ]
                    events += self._end_run(
                        run,
                        "failed",
                        f"step {step.name!r} {note}, no retries left",
                        steps=await self._steps_locked(s, run),
                    )
                await self.bus.publish_many(events, s)
        return count
