"""The same 5-step no-op diamond (a → b, c → d → e) on Prefect's local execution, for bench/workflows.py.

Runs in its own virtualenv (`make prefect`: `.venv-prefect`, Prefect pinned there), never in Hearth's: it
imports nothing from Hearth. Prefect runs offline here: no PREFECT_API_URL, so its ephemeral API server
(SQLite under a temporary PREFECT_HOME) records the flow and task runs; b and c run side by side on its
event loop (async tasks), as Hearth's executor runs its async no-op steps side by side on its loop.

Measured the way bench/workflows.py measures Hearth, from the runs' own records: a task's overhead is from
the moment it became ready (its dependencies' end, or its flow run's start for the first) to its end; a
run's from the flow run's creation to its end. Prints one JSON object.

    .venv-prefect/bin/python bench/prefect_noop5.py [--runs 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

# Before Prefect is imported: its settings are read at import.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="hearth-prefect-bench-"))
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
# A loaded machine starts the ephemeral server slowly (the default wait is 20 s).
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId


@task
async def a() -> None:
    return None


@task
async def b() -> None:
    return None


@task
async def c() -> None:
    return None


@task
async def d() -> None:
    return None


@task
async def e() -> None:
    return None


# Async, as Hearth's no-op steps are (run on the event loop): b and c side by side with asyncio.gather.
# (A sync flow's exit joins its heartbeat thread, which sleeps in 1 s slices: ~1 s per run, not measured.)
@flow(name="noop5", log_prints=False)
async def noop5() -> None:
    await a()
    await asyncio.gather(b(), c())
    await d()
    await e()


AFTER = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d"]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def records(flow_run_ids: list[Any]) -> tuple[list[Any], list[Any]]:
    """The flow runs and their task runs as Prefect's API stored them (task states arrive as events,
    written a moment later: wait until every run has its five completed tasks)."""
    async with get_client() as client:
        flows: list[Any] = []
        tasks: list[Any] = []
        # 40 runs a request: their 200 task runs are the most one read returns (PREFECT_API_DEFAULT_LIMIT).
        for start in range(0, len(flow_run_ids), 40):
            chunk = flow_run_ids[start : start + 40]
            flow_filter = FlowRunFilter(id=FlowRunFilterId(any_=chunk))
            flows += await client.read_flow_runs(flow_run_filter=flow_filter, limit=len(chunk))
            for _ in range(100):
                found = await client.read_task_runs(flow_run_filter=flow_filter, limit=5 * len(chunk))
                done = [t for t in found if t.state_type and t.state_type.value == "COMPLETED" and t.end_time]
                if len(done) == 5 * len(chunk):
                    break
                await asyncio.sleep(0.2)
            tasks += done
        return flows, tasks


async def run_all(runs: int) -> tuple[list[Any], list[Any], float]:
    for _ in range(3):  # warm-up: the ephemeral server starts, the flow is registered
        await noop5(return_state=True)
    ids: list[Any] = []
    started = time.perf_counter()
    for _ in range(runs):
        state = await noop5(return_state=True)
        assert state.is_completed(), state
        ids.append(state.state_details.flow_run_id)
    elapsed = time.perf_counter() - started
    return (*await records(ids), elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    import prefect

    flows, tasks, elapsed = asyncio.run(run_all(args.runs))
    by_run: dict[Any, dict[str, Any]] = {}
    for t in tasks:
        by_run.setdefault(t.flow_run_id, {})[t.task_key.split("-")[0]] = t
    per_step: list[float] = []
    per_run: list[float] = []
    for fr in flows:
        steps = by_run.get(fr.id, {})
        if len(steps) != 5 or fr.start_time is None or fr.end_time is None:
            continue
        for name, t in steps.items():
            ready = max((steps[x].end_time for x in AFTER[name]), default=fr.start_time)
            per_step.append((t.end_time - ready).total_seconds() * 1000)
        per_run.append((fr.end_time - fr.created).total_seconds() * 1000)
    json.dump(
        {
            "prefect": prefect.__version__,
            "runs": args.runs,
            "runs_measured": len(per_run),
            "step_overhead_ms_p50": statistics.median(per_step),
            "step_overhead_ms_p95": pct(per_step, 0.95),
            "run_ms_p50": statistics.median(per_run),
            "run_ms_p95": pct(per_run, 0.95),
            "sequential_runs_per_s": args.runs / elapsed,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
