"""Running graphs as stored, per-user runs. A run executes in its own task (a client that hangs up does not
stop it), its events go to whoever streams it, and its row records how it ended. The graph checkpoints
after every node (thread id = run id), so a failed or interrupted run resumes where it stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import anyio
from langgraph.graph.state import CompiledStateGraph

from hearth.agents.events import AgentRunFinished
from hearth.agents.models import AgentRun
from hearth.agents.repository import RunRepository, beat, mark_abandoned
from hearth.agents.runtime import RunDeps
from hearth.agents.schemas import Checkpoint, RunDetail, RunOut
from hearth.events.bus import EventBus
from hearth.platform.db import Database, utcnow
from hearth.platform.errors import HearthError

log = logging.getLogger("hearth.agents")
_END = object()


@dataclass
class ActiveRun:
    run_id: str
    task: asyncio.Task[None] | None = None
    listeners: list[asyncio.Queue[Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # events so far, for late listeners
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def send(self, event: dict[str, Any]) -> None:
        self.history.append(event)
        for q in self.listeners:
            q.put_nowait(event)

    def listen(self) -> asyncio.Queue[Any]:
        q: asyncio.Queue[Any] = asyncio.Queue()
        for event in self.history:
            q.put_nowait(event)
        if self.finished.is_set():
            q.put_nowait(_END)
        self.listeners.append(q)
        return q


class Runs:
    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        graphs: dict[str, CompiledStateGraph],  # type: ignore[type-arg]
        heartbeat_seconds: float = 10.0,
        durability: Literal["sync", "async"] = "async",
    ) -> None:
        self.db = db
        self.durability = durability
        self.bus = bus
        self.graphs = graphs
        self.active: dict[str, ActiveRun] = {}
        self.heartbeat_seconds = heartbeat_seconds
        self._beating: asyncio.Task[None] | None = None

    @property
    def stale_after(self) -> timedelta:
        """A `running` run whose process has not beaten for this long was cut short."""
        return timedelta(seconds=3 * self.heartbeat_seconds)

    async def recover(self) -> int:
        """Runs left `running` by a process that stopped beating become `interrupted` (resumable)."""
        async with self.db.transaction() as s:
            return await mark_abandoned(
                s, running_ids=set(self.active), stale_before=utcnow() - self.stale_after
            )

    def start_heartbeat(self) -> None:
        self._beating = asyncio.create_task(self._heartbeat(), name="agent-runs-heartbeat")

    async def _heartbeat(self) -> None:
        """Every beat: this process's runs are alive; others' runs whose process stopped beating are not."""
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                if self.active:
                    async with self.db.transaction() as s:
                        await beat(s, running_ids=set(self.active), now=utcnow())
                await self.recover()
            except Exception:
                log.exception("agent runs heartbeat failed")

    async def stop(self) -> None:
        """Cancel this process's runs (they become `interrupted`, resumable)."""
        if self._beating is not None:
            self._beating.cancel()
            await asyncio.gather(self._beating, return_exceptions=True)
        tasks = [a.task for a in self.active.values() if a.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- starting and resuming ---------------------------------------------------------------------------

    async def start(
        self, *, kind: str, deps: RunDeps, query: str, request: dict[str, Any], state: dict[str, Any]
    ) -> ActiveRun:
        now = utcnow()
        async with self.db.transaction() as s:
            run = AgentRun(
                user_id=deps.user_id,
                kind=kind,
                status="running",
                query=query,
                request=request,
                created_at=now,
                updated_at=now,
            )
            s.add(run)
        return self._launch(run.id, kind, deps, state)

    async def resume(self, *, kind: str, deps: RunDeps, run_id: str) -> ActiveRun:
        async with self.db.transaction() as s:
            run = await RunRepository(s, owner_id=deps.user_id).of_kind_or_404(run_id, kind, lock=True)
            stale = run.updated_at < utcnow() - self.stale_after  # its process stopped beating
            if run.id in self.active or (run.status == "running" and not stale):
                raise HearthError(409, f"run {run_id!r} is still running", code="run_running")
            if run.status == "completed":
                raise HearthError(409, f"run {run_id!r} has completed: nothing to resume", code="run_done")
            run.status, run.error, run.updated_at = "running", None, utcnow()
        return self._launch(run_id, kind, deps, None)

    def _launch(self, run_id: str, kind: str, deps: RunDeps, state: dict[str, Any] | None) -> ActiveRun:
        active = ActiveRun(run_id)
        self.active[run_id] = active
        active.task = asyncio.create_task(self._drive(active, kind, deps, state), name=f"agent-run-{run_id}")
        return active

    async def _drive(self, active: ActiveRun, kind: str, deps: RunDeps, state: dict[str, Any] | None) -> None:
        graph = self.graphs[kind]
        config = {"configurable": {"thread_id": active.run_id, "hearth": deps}}
        active.send({"type": "run", "run_id": active.run_id, "kind": kind, "resumed": state is None})
        status, error, result = "completed", None, None
        try:
            # "async": a step's checkpoint is written while the next step runs (its model call hides the
            # write); LangGraph writes them in order and waits for the last before astream ends. A process
            # killed mid-graph loses the step it was running and, inside that short window, the one before
            # (resume runs them again). "sync" waits for each write before the next step starts.
            async for mode, chunk in graph.astream(
                state, config, stream_mode=["updates", "custom"], durability=self.durability
            ):
                if mode == "custom":
                    active.send(chunk)
                    continue
                for node, update in chunk.items():
                    for step in (update or {}).get("steps", []):
                        active.send({"type": "node", "node": node, "step": step})
            values = (await graph.aget_state(config)).values
            result = {**values.get("final", {}), "steps": values.get("steps", [])}
        except asyncio.CancelledError:
            status, error = "interrupted", "the server stopped while the run was in progress"
        except Exception as exc:
            log.warning("agent run %s failed: %s", active.run_id, exc)
            status, error = "failed", f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
        finally:
            with anyio.CancelScope(shield=True):
                out = await self._settle(active.run_id, status, error, result, deps.user_id, kind)
                if status == "completed":
                    active.send({"type": "done", "run": out})
                else:
                    active.send(
                        {"type": "error", "error": {"message": error, "code": f"run_{status}"}, "run": out}
                    )
                active.finished.set()
                for q in active.listeners:
                    q.put_nowait(_END)
                self.active.pop(active.run_id, None)

    async def _settle(
        self,
        run_id: str,
        status: str,
        error: str | None,
        result: dict[str, Any] | None,
        user_id: str,
        kind: str,
    ) -> dict[str, Any] | None:
        try:
            async with self.db.transaction() as s:
                run = await RunRepository(s, owner_id=user_id).get_or_404(run_id, lock=True)
                now = utcnow()
                run.status, run.error, run.updated_at = status, error, now
                if result is not None:
                    run.result = result
                    run.finished_at = now
                score = (result or {}).get("score")
                await self.bus.publish(
                    AgentRunFinished(
                        run_id=run_id,
                        user_id=user_id,
                        kind=kind,
                        status=status,
                        score=score if isinstance(score, int) else None,
                        steps=len((result or {}).get("steps", [])),
                    ),
                    session=s,
                )
                await s.flush()
                return RunOut.model_validate(run).model_dump(mode="json")
        except Exception:
            log.exception("agent run %s: could not store how it ended", run_id)
            return None

    # -- following a run ---------------------------------------------------------------------------------

    async def events(self, active: ActiveRun) -> AsyncIterator[dict[str, Any]]:
        q = active.listen()
        try:
            while True:
                event = await q.get()
                if event is _END:
                    return
                yield event
        finally:
            if q in active.listeners:
                active.listeners.remove(q)

    async def wait(self, active: ActiveRun) -> dict[str, Any]:
        """The run's last event (done or error) once it ends."""
        await active.finished.wait()
        return active.history[-1]

    # -- reading -----------------------------------------------------------------------------------------

    async def list(self, *, kind: str, user_id: str, limit: int, offset: int) -> list[RunOut]:
        async with self.db.sessions() as s:
            rows = await RunRepository(s, owner_id=user_id).page(kind, limit=limit, offset=offset)
            return [RunOut.model_validate(r) for r in rows]

    async def get(self, *, kind: str, user_id: str, run_id: str) -> RunDetail:
        async with self.db.sessions() as s:
            run = await RunRepository(s, owner_id=user_id).of_kind_or_404(run_id, kind)
        snapshot = await self.graphs[kind].aget_state({"configurable": {"thread_id": run_id}})
        steps = (snapshot.values or {}).get("steps", [])
        if run.result and not steps:
            steps = run.result.get("steps", [])
        return RunDetail.model_validate(
            {**RunOut.model_validate(run).model_dump(), "steps": steps, "next": list(snapshot.next or ())}
        )

    async def checkpoints(self, *, kind: str, user_id: str, run_id: str) -> list[Checkpoint]:
        """The run's checkpoints, oldest first: what each step wrote and the state after it."""
        async with self.db.sessions() as s:
            await RunRepository(s, owner_id=user_id).of_kind_or_404(run_id, kind)
        history = [
            snap
            async for snap in self.graphs[kind].aget_state_history({"configurable": {"thread_id": run_id}})
        ]
        out = []
        seen = 0  # step records in the previous checkpoint: the new ones name the node(s) that ran
        for snap in reversed(history):
            meta = snap.metadata or {}
            steps = (snap.values or {}).get("steps", [])
            values = {k: v for k, v in (snap.values or {}).items() if k != "steps"}
            out.append(
                Checkpoint(
                    checkpoint_id=str(snap.config["configurable"]["checkpoint_id"]),
                    step=int(meta.get("step", -1)),
                    source=str(meta.get("source", "")),
                    wrote=[s["node"] for s in steps[seen:]],
                    next=list(snap.next or ()),
                    created_at=str(snap.created_at),
                    values=values,
                )
            )
            seen = len(steps)
        return out
