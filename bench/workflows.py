"""The local executor's scheduling cost: no-op runs of a 5-step pipeline (a diamond: a → b, c → d → e) on
SQLite and on PostgreSQL, through the same engine, executor and outbox events a server uses.

1. Latency: runs one after another. A no-op step does nothing, so everything between the moment a step
   becomes ready (its dependencies succeeded, or its run was promoted) and the moment its success is
   committed is scheduling overhead: the claim transaction, the task start, the completion transaction with
   its events and the readiness of the next steps. Reported per step, p50/p95 (target ≤ 20 ms p95), and per
   run (created → finished).
2. Throughput: all runs submitted at once, runs per second until the last one finished.

    .venv/bin/python bench/workflows.py [--runs 1000] [--concurrency 4] [--only sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select

from hearth.auth.service import AuthService
from hearth.events.bus import EventBus
from hearth.platform.db import Database
from hearth.platform.migrate import upgrade
from hearth.workflows.artifacts import ArtifactStore, LocalBackend
from hearth.workflows.engine import Engine
from hearth.workflows.executor import LocalExecutor
from hearth.workflows.models import Run, StepRow
from hearth.workflows.runner import StepRunner
from hearth.workflows.schemas import RunCreate
from hearth.workflows.service import WorkflowService

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The tests' five no-op steps, a diamond: a → (b, c) → d → e.
from tests.workflow_pipelines import noop5  # noqa: E402

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


class SignallingEngine(Engine):
    """Tells the benchmark when a run ends, so it waits on an event instead of polling the database."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.done: dict[str, asyncio.Event] = {}

    def _end_run(self, run: Any, status: str, error: str | None, **kwargs: Any) -> list[Any]:
        events = super()._end_run(run, status, error, **kwargs)
        # Set inside the run's last transaction: the waiter resumes after it commits (it needs the loop).
        self.done.setdefault(run.id, asyncio.Event()).set()
        return events


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench(url: str, runs: int, concurrency: int) -> dict[str, Any]:
    upgrade(url)
    db = Database(url)
    work = Path(tempfile.mkdtemp(prefix="hearth-wf-bench-"))
    bus = EventBus(db)  # not started: events stay in the outbox, written as a server writes them
    engine = SignallingEngine(db, bus)
    executor = LocalExecutor(
        engine=engine,
        runner=StepRunner(store=ArtifactStore(LocalBackend(work / "artifacts")), workdir=work / "work"),
        concurrency=concurrency,
        poll_seconds=0.5,
        heartbeat_seconds=5.0,
    )
    service = WorkflowService(
        db=db,
        bus=bus,
        engine=engine,
        store=executor.runner.store,
        pipelines={noop5.name: noop5},
        on_created=executor.wake,
    )
    await service.register()
    user = await AuthService(db).create_user(username=f"bench-{uuid.uuid4().hex[:8]}")
    await executor.start()

    async def finished(run_id: str) -> None:
        await engine.done.setdefault(run_id, asyncio.Event()).wait()

    try:
        # Warm-up: connections, caches.
        for _ in range(5):
            await finished(
                (await service.create_run(user_id=user.id, body=RunCreate(pipeline=noop5.name))).id
            )
        sequential: list[str] = []
        started = time.perf_counter()
        for _ in range(runs):
            run = await service.create_run(user_id=user.id, body=RunCreate(pipeline=noop5.name))
            await finished(run.id)
            sequential.append(run.id)
        sequential_s = time.perf_counter() - started

        started = time.perf_counter()
        batch = [
            (await service.create_run(user_id=user.id, body=RunCreate(pipeline=noop5.name))).id
            for _ in range(runs)
        ]
        for run_id in batch:
            await finished(run_id)
        batch_s = time.perf_counter() - started

        async with db.sessions() as s:
            steps = (
                await s.execute(
                    select(StepRow.ready_at, StepRow.finished_at, StepRow.started_at).where(
                        StepRow.run_id.in_(sequential)
                    )
                )
            ).all()
            run_rows = (
                await s.execute(
                    select(Run.created_at, Run.finished_at, Run.status).where(Run.id.in_(sequential))
                )
            ).all()
        per_step = [(f - r).total_seconds() * 1000 for r, f, _ in steps]
        claim = [(st - r).total_seconds() * 1000 for r, _, st in steps]
        per_run = [(f - c).total_seconds() * 1000 for c, f, _ in run_rows]
        assert all(status == "succeeded" for *_, status in run_rows)
        return {
            "runs": runs,
            "step_overhead_ms_p50": statistics.median(per_step),
            "step_overhead_ms_p95": pct(per_step, 0.95),
            "claim_ms_p50": statistics.median(claim),
            "run_ms_p50": statistics.median(per_run),
            "run_ms_p95": pct(per_run, 0.95),
            "sequential_runs_per_s": runs / sequential_s,
            "batch_runs_per_s": runs / batch_s,
        }
    finally:
        await executor.stop()
        await db.close()


def postgres_url() -> tuple[str, str]:
    schema = f"hearth_wfbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}", schema


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    if args.only in (None, "sqlite"):
        path = Path(tempfile.mkdtemp(prefix="hearth-wf-bench-")) / "bench.db"
        results["sqlite"] = asyncio.run(bench(f"sqlite+aiosqlite:///{path}", args.runs, args.concurrency))
    if args.only in (None, "postgres"):
        url, schema = postgres_url()
        try:
            results["postgres"] = asyncio.run(bench(url, args.runs, args.concurrency))
        finally:
            with psycopg.connect(POSTGRES, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    keys = list(next(iter(results.values())))
    print(f"{'':28}" + "".join(f"{name:>14}" for name in results))
    for key in keys:
        print(f"{key:28}" + "".join(f"{r[key]:>14.2f}" for r in results.values()))


if __name__ == "__main__":
    main()
