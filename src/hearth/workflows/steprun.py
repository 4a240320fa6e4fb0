"""`hearth run step RUN STEP`: run one step of a run in this process, against the shared database. It is
what an Argo container calls; it runs the step with the same code as the local executor (claim, run,
record), so states, retries, logs and artifacts are the same whichever executor ran it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from sqlalchemy import select

from hearth.workflows.artifacts import store_from_settings
from hearth.workflows.engine import Engine
from hearth.workflows.models import StepRow
from hearth.workflows.runner import StepRunner

log = logging.getLogger("hearth.workflows")


async def run_step(settings: Any, run_id: str, step: str) -> tuple[int, str]:
    """(exit code, message): 0 when the step succeeded (now or before), 1 otherwise."""
    from hearth.platform.core import build_platform, close_platform, load_contexts

    # This process runs one step: no executor of its own, no ingestion worker.
    settings = settings.model_copy(update={"workflows_executor": False, "rag_worker": False})
    platform = await build_platform(settings, load_contexts())
    try:
        engine = Engine(platform.db, platform.bus, synchronous_commit=settings.workflows_synchronous_commit)
        await engine.promote(run_id=run_id)  # the first step of an Argo run starts the run
        worker = f"argo:{socket.gethostname()}"
        claimed = await engine.claim(worker=worker, limit=1, run_id=run_id, step=step)
        if not claimed:
            async with platform.db.sessions() as s:
                row = await s.scalar(select(StepRow).where(StepRow.run_id == run_id, StepRow.name == step))
            if row is None:
                return 1, f"run {run_id} has no step {step!r}"
            if row.status == "succeeded":
                return 0, f"step {step!r} already succeeded"
            return 1, f"step {step!r} of run {run_id} is {row.status}, not ready to run"
        [one] = claimed
        runner = StepRunner(
            store=store_from_settings(settings),
            workdir=settings.data_dir / "workflows" / "work",
            ports=platform.ports,
        )
        cancelled = asyncio.Event()

        async def watch() -> None:
            while True:
                await asyncio.sleep(settings.workflows_heartbeat_seconds)
                await engine.heartbeat(worker=worker)
                if await engine.ended([run_id]):
                    cancelled.set()

        watcher = asyncio.create_task(watch())
        try:
            outcome = await runner.run(one, cancelled=cancelled)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        status = await engine.complete(one, outcome, worker=worker)
        if status == "succeeded":
            return 0, f"step {step!r} succeeded"
        return 1, f"step {step!r} {status or 'was taken over'}: {outcome.error or ''}".rstrip(": ")
    finally:
        await close_platform(platform)
