"""The local executor: a pool of at most `concurrency` step attempts in this process, fed from the database.

One loop promotes pending runs, claims ready steps up to the free slots and starts each as a task; it
wakes when a run is created or a step ends here, and otherwise polls (work made by another server).
Every `heartbeat` seconds it tells the database its running steps are alive, stops steps whose run ended
(cancelled, or failed in another step), and recovers steps whose worker stopped heartbeating (a crashed
server: resumed while retries are left, else failed). At start-up that recovery runs first, so no run is
left "running" by a dead process. A graceful stop gives running attempts back (they run again, with no
retry used up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy.exc import OperationalError

from hearth.workflows.engine import Claimed, Engine, Outcome
from hearth.workflows.runner import StepRunner

log = logging.getLogger("hearth.workflows")
PROMOTE_BATCH = 50


@dataclass
class _Active:
    claimed: Claimed
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    logs: list[str] = field(default_factory=list)
    task: asyncio.Task | None = None


class LocalExecutor:
    def __init__(
        self,
        *,
        engine: Engine,
        runner: StepRunner,
        concurrency: int = 4,
        poll_seconds: float = 0.5,
        heartbeat_seconds: float = 5.0,
        stale_seconds: float = 30.0,
    ) -> None:
        self.engine = engine
        self.runner = runner
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.active: dict[str, _Active] = {}
        self._wake = asyncio.Event()
        self._maybe_pending = True  # a run may be waiting for promotion (created here, or by another server)
        self._backlog = True  # ready steps may be waiting that no completion here started
        self._loop_task: asyncio.Task | None = None
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    def _dead_here(self, worker: str) -> bool:
        """Whether `worker` ("host:pid:tag") ran on this host in a process that no longer exists."""
        host, _, rest = worker.partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit() or worker == self.worker:
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False

    def wake(self) -> None:
        """A run was created: promote it and start its first steps now."""
        self._maybe_pending = True
        self._wake.set()

    async def start(self) -> None:
        # A server restarted on this machine need not wait for the heartbeats to go stale: a worker of
        # this host whose process is gone is dead now.
        await self.engine.recover(stale_after=self.stale_seconds, dead=self._dead_here)
        self._loop_task = asyncio.create_task(self._loop(), name="workflows-executor")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        # Give running attempts back: another server, or this one after a restart, runs them again.
        tasks = []
        for active in list(self.active.values()):
            active.cancelled.set()
            if active.task is not None:
                tasks.append(active.task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        last_check = time.monotonic()
        while not self._stopping:
            woken = self._wake.is_set()  # else the poll interval passed: another server may have made work
            self._wake.clear()
            try:
                free = self.concurrency - len(self.active)
                # A step that ended here only makes its run's next steps ready: no promotion to look for.
                if not woken or self._maybe_pending:
                    # A new run's first steps start from the transaction that promotes it.
                    promoted, first = await self.engine.promote_and_claim(
                        limit=PROMOTE_BATCH, worker=self.worker, take=max(free, 0)
                    )
                    # A full batch promoted: more may wait.
                    self._maybe_pending = promoted >= PROMOTE_BATCH
                    for claimed in first:
                        self._start(claimed)
                    if promoted and len(first) == max(free, 0):
                        self._backlog = True  # first steps may be left that had no slot
                    free -= len(first)
                # Ready steps nobody here started: claim them. When a step ended here its completion already
                # started its run's next steps (`_backlog` unless it had slots for all): no query for nothing.
                if free > 0 and (not woken or self._backlog):
                    taken = await self.engine.claim(worker=self.worker, limit=free)
                    for claimed in taken:
                        self._start(claimed)
                    self._backlog = len(taken) == free  # a full claim: more may wait
                if time.monotonic() - last_check >= self.heartbeat_seconds:
                    last_check = time.monotonic()
                    await self._check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("workflow executor pass failed; retrying")
                self._backlog = self._maybe_pending = True
                await asyncio.sleep(self.poll_seconds)
            if not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._next_wait(last_check))

    def _next_wait(self, last_check: float) -> float:
        until_check = self.heartbeat_seconds - (time.monotonic() - last_check)
        wait = self.poll_seconds if len(self.active) < self.concurrency else until_check
        return max(0.01, min(wait, until_check))

    async def _check(self) -> None:
        """Heartbeat our steps, stop those whose run ended, recover other workers' stale steps."""
        if self.active:
            await self.engine.heartbeat(worker=self.worker)
            for run_id in await self.engine.ended(a.claimed.run_id for a in self.active.values()):
                for active in self.active.values():
                    if active.claimed.run_id == run_id:
                        active.cancelled.set()
            await self._flush_logs()
        await self.engine.recover(stale_after=self.stale_seconds)

    async def _flush_logs(self) -> None:
        for active in list(self.active.values()):
            if active.logs:
                lines, active.logs = active.logs, []
                await self.engine.append_logs(active.claimed, lines)

    def _start(self, claimed: Claimed) -> None:
        active = _Active(claimed)
        self.active[claimed.step_id] = active
        self._idle.clear()
        active.task = asyncio.create_task(self._run(active), name=f"step-{claimed.run_id}-{claimed.name}")

    async def _record(self, claimed: Claimed, outcome: Outcome, free: int) -> list[Claimed]:
        """Record the attempt; a transaction the database aborted (a deadlock victim, a dropped connection)
        is tried again rather than leaving the step running until its heartbeat goes stale."""
        for attempt in range(3):
            try:
                status, chained = await self.engine.complete_and_claim(
                    claimed, outcome, worker=self.worker, limit=free
                )
                # The loop claims only when work may wait that this completion did not start: a retry (the
                # step is ready again), or next steps beyond the free slots.
                if status != "succeeded" or len(chained) >= free:
                    self._backlog = True
                return chained
            except OperationalError:
                if attempt == 2:
                    raise
                log.warning("recording step %s of run %s failed; trying again", claimed.name, claimed.run_id)
                await asyncio.sleep(0.05 * (attempt + 1))
        return []

    async def _run(self, active: _Active) -> None:
        claimed = active.claimed
        try:
            outcome = await self.runner.run(claimed, cancelled=active.cancelled, on_log=active.logs.append)
            if outcome.status == "cancelled" and self._stopping:
                outcome = Outcome(status="requeued")
            outcome.logs = active.logs + outcome.logs
            active.logs = []
            # The run's next steps start from the same transaction, up to the slots free once this one ends.
            free = 0 if self._stopping else self.concurrency - len(self.active) + 1
            chained = await self._record(claimed, outcome, free)
            for following in chained:
                self._start(following)
        except Exception:
            self._backlog = True
            log.exception("step %s of run %s could not be recorded", claimed.name, claimed.run_id)
        finally:
            self.active.pop(claimed.step_id, None)
            if not self.active:
                self._idle.set()
            self._wake.set()
