"""The local executor's scheduling cost: no-op runs of a 5-step pipeline (a diamond: a → b, c → d → e) on
SQLite and on PostgreSQL, through the same engine, executor and outbox events a server uses.

1. Latency: runs one after another. A no-op step does nothing, so everything between the moment a step
   becomes ready (its dependencies succeeded, or its run was promoted) and the moment its success is
   committed is scheduling overhead: the claim transaction, the task start, the completion transaction with
   its events and the readiness of the next steps. Reported per step, p50/p95 (target ≤ 20 ms p95), and per
   run (created → finished).
2. Throughput: all runs submitted at once, runs per second until the last one finished.

PostgreSQL runs with the server's default, every step transition flushed to the WAL at commit (`--relaxed`:
once more with HEARTH_WORKFLOWS_SYNCHRONOUS_COMMIT=false, transitions committed without waiting for the
flush). Then the
same diamond on Prefect's local execution (bench/prefect_noop5.py, in `.venv-prefect`: `make prefect`),
measured the same way, and the ratios side by side.

    make prefect   # once: Prefect (pinned) in its own virtualenv, .venv-prefect
    .venv/bin/python bench/workflows.py [--runs 1000] [--concurrency 4] [--only sqlite|postgres]
        [--relaxed] [--prefect-runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
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
PREFECT_VENV = ".venv-prefect"


class SignallingEngine(Engine):
    """Tells the benchmark when a run ends, so it waits on an event instead of polling the database."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.done: dict[str, asyncio.Event] = {}

    def _end_run(self, run: Any, status: str, error: str | None, **kwargs: Any) -> list[Any]:
        events = super()._end_run(run, status, error, **kwargs)
        # Set inside the run's last transaction: the waiter resumes after it commits (it needs the loop).
        self.done.setdefault(run.id, asyncio.Event()).set()
        return events


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench(url: str, runs: int, concurrency: int, *, synchronous_commit: bool = True) -> dict[str, Any]:
    upgrade(url)
    db = Database(url)
    work = Path(tempfile.mkdtemp(prefix="hearth-wf-bench-"))
    bus = EventBus(db)  # not started: events stay in the outbox, written as a server writes them
    engine = SignallingEngine(db, bus, synchronous_commit=synchronous_commit)
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


def prefect(runs: int) -> dict[str, Any] | str:
    """bench/prefect_noop5.py in Prefect's own virtualenv (`make prefect`); its JSON, or why not."""
    python = ROOT / PREFECT_VENV / "bin" / "python"
    if not python.exists():
        return f"not run: no {PREFECT_VENV} (make prefect)"
    done = subprocess.run(
        [str(python), str(ROOT / "bench" / "prefect_noop5.py"), "--runs", str(runs)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument(
        "--relaxed",
        action="store_true",
        help="PostgreSQL once more with HEARTH_WORKFLOWS_SYNCHRONOUS_COMMIT=false (transitions not flushed)",
    )
    parser.add_argument(
        "--prefect-runs", type=int, default=200, help="runs on Prefect (0: none); ~0.5-2 s each here"
    )
    args = parser.parse_args()
    load = os.getloadavg()
    results: dict[str, dict[str, Any]] = {}
    if args.only in (None, "sqlite"):
        path = Path(tempfile.mkdtemp(prefix="hearth-wf-bench-")) / "bench.db"
        results["sqlite"] = asyncio.run(bench(f"sqlite+aiosqlite:///{path}", args.runs, args.concurrency))
    modes = [True, False] if args.relaxed else [True]
    if args.only in (None, "postgres"):
        for sync in modes:
            url, schema = postgres_url()
            try:
                name = "postgres" if sync else "pg, no flush"
                results[name] = asyncio.run(bench(url, args.runs, args.concurrency, synchronous_commit=sync))
            finally:
                with psycopg.connect(POSTGRES, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    other = prefect(args.prefect_runs) if args.prefect_runs > 0 else "not run (--prefect-runs 0)"
    if isinstance(other, dict):
        results[f"prefect {other.pop('prefect')}"] = other
    keys = list(next(iter(results.values())))
    keys += [k for r in results.values() for k in r if k not in keys]
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start; {args.concurrency} slots")
    print(f"{'':28}" + "".join(f"{name:>16}" for name in results))
    for key in keys:
        cells = (f"{r[key]:>16.2f}" if key in r else f"{'-':>16}" for r in results.values())
        print(f"{key:28}" + "".join(cells))
    if isinstance(other, str):
        print(f"Prefect: {other}")
        return
    # How many times Prefect's figure Hearth's is: below 1 for times and above 1 for runs/s means Hearth is
    # faster.
    theirs = results[next(n for n in results if n.startswith("prefect"))]
    ours = [n for n in results if not n.startswith("prefect")]
    print(f"\nHearth ÷ Prefect {'':11}" + "".join(f"{name:>16}" for name in ours))
    for key in (
        "step_overhead_ms_p50",
        "step_overhead_ms_p95",
        "run_ms_p50",
        "run_ms_p95",
        "sequential_runs_per_s",
    ):
        print(f"{key:28}" + "".join(f"{results[n][key] / theirs[key]:>16.2f}" for n in ours))


if __name__ == "__main__":
    main()
