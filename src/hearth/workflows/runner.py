"""Running one claimed step attempt: fetch its input artifacts, call the function (on the loop for `async
def`, in a child process for `def`), enforce its timeout and a cancel, check its outputs, store the
artifacts it declared. Used by the local executor and by `hearth run step` (an Argo container)."""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hearth.workflows.artifacts import ArtifactMissing, ArtifactStore
from hearth.workflows.child import resolve
from hearth.workflows.engine import Claimed, Outcome
from hearth.workflows.pipeline import StepContext, _adapter

_MP: Any = None


def _mp_context() -> Any:
    """A forkserver context that preloads the child module (fork from a clean process, not the server)."""
    global _MP
    if _MP is None:
        _MP = multiprocessing.get_context("forkserver")
        _MP.set_forkserver_preload(["hearth.workflows.child", "hearth.workflows.pipeline"])
    return _MP


class StepRunner:
    def __init__(self, *, store: ArtifactStore, workdir: Path, ports: Any = None) -> None:
        self.store = store
        self.workdir = workdir
        self.ports = ports

    async def run(
        self,
        claimed: Claimed,
        *,
        cancelled: asyncio.Event,
        on_log: Callable[[str], None] | None = None,
    ) -> Outcome:
        """One attempt, start to end; never raises (a crash is a failed outcome)."""
        workdir = self.workdir / claimed.run_id / f"{claimed.name}-{claimed.attempt}"
        logs: list[str] = []

        def log(line: str) -> None:
            if on_log is not None:
                on_log(line)
            else:
                logs.append(line)

        try:
            inputs = await self._fetch_inputs(claimed, workdir)
        except ArtifactMissing as exc:
            return Outcome(status="failed", error=f"missing input artifact: {exc}", logs=logs)
        try:
            if claimed.spec["inline"]:
                outcome = await self._inline(claimed, workdir, inputs, cancelled, log)
            else:
                outcome = await self._child(claimed, workdir, inputs, cancelled, log)
            if outcome.status == "succeeded":
                outcome = await self._finish(claimed, workdir, outcome)
            outcome.logs = logs + outcome.logs
            return outcome
        finally:
            if workdir.exists():
                await asyncio.to_thread(shutil.rmtree, workdir, True)

    async def _fetch_inputs(self, claimed: Claimed, workdir: Path) -> dict[str, Path]:
        refs = dict(claimed.inputs)
        params = claimed.spec.get("param_types") or {}
        for name, kind in params.items():
            if kind == "artifact" and claimed.params.get(name):
                refs[f"params.{name}"] = claimed.params[name]
        local: dict[str, Path] = {}
        for ref, uri in refs.items():
            dest = workdir / "in" / ref
            await asyncio.to_thread(self.store.fetch, uri, dest)
            local[ref] = dest
        return local

    def _context(self, claimed: Claimed, workdir: Path, inputs: dict[str, Path], emit: Any) -> StepContext:
        return StepContext(
            run_id=claimed.run_id,
            step=claimed.name,
            attempt=claimed.attempt,
            params=claimed.params,
            upstream=claimed.upstream,
            workdir=workdir,
            inputs=inputs,
            owner_id=claimed.owner_id,
            ports=self.ports,
            emit=emit,
        )

    async def _inline(
        self,
        claimed: Claimed,
        workdir: Path,
        inputs: dict[str, Path],
        cancelled: asyncio.Event,
        log: Callable[[str], None],
    ) -> Outcome:
        def emit(message: tuple[Any, ...]) -> None:
            if message[0] == "log":
                log(message[1])

        ctx = self._context(claimed, workdir, inputs, emit)
        task = asyncio.ensure_future(resolve(claimed.spec["target"])(ctx))
        stop = asyncio.ensure_future(cancelled.wait())
        try:
            done, _ = await asyncio.wait(
                {task, stop}, timeout=claimed.timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop.cancel()
        if task not in done:
            task.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(task), 5)
            except BaseException:
                pass
            if cancelled.is_set():
                return Outcome(status="cancelled", metrics=ctx.metrics)
            return Outcome(
                status="failed", error=f"timed out after {claimed.timeout:g} s", metrics=ctx.metrics
            )
        exc = task.exception()
        if exc is not None:
            where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            at = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
            return Outcome(status="failed", error=f"{type(exc).__name__}: {exc}{at}", metrics=ctx.metrics)
        return Outcome(status="succeeded", outputs=task.result() or {}, metrics=ctx.metrics)

    async def _child(
        self,
        claimed: Claimed,
        workdir: Path,
        inputs: dict[str, Path],
        cancelled: asyncio.Event,
        log: Callable[[str], None],
    ) -> Outcome:
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
        spec = {
            "target": claimed.spec["target"],
            "run_id": claimed.run_id,
            "step": claimed.name,
            "attempt": claimed.attempt,
            "params": claimed.params,
            "upstream": claimed.upstream,
            "workdir": str(workdir),
            "inputs": {k: str(v) for k, v in inputs.items()},
            "owner_id": claimed.owner_id,
        }
        mp = _mp_context()
        receive, send = mp.Pipe(duplex=False)
        process = mp.Process(target=_child_entry, args=(send, spec), daemon=True)
        await asyncio.to_thread(process.start)
        send.close()
        loop = asyncio.get_running_loop()
        messages: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()

        def readable() -> None:
            try:
                messages.put_nowait(receive.recv())
            except (EOFError, OSError):
                loop.remove_reader(receive.fileno())
                messages.put_nowait(None)

        loop.add_reader(receive.fileno(), readable)
        metrics: dict[str, float] = {}
        result: Outcome | None = None

        async def drain() -> Outcome:
            while True:
                message = await messages.get()
                if message is None:
                    return Outcome(
                        status="failed", error=f"the step's process died (exit code {process.exitcode})"
                    )
                kind = message[0]
                if kind == "log":
                    log(message[1])
                elif kind == "metric":
                    metrics[message[1]] = message[2]
                elif kind == "done":
                    return Outcome(status="succeeded", outputs=message[1] or {})
                elif kind == "error":
                    log(message[2].rstrip())
                    return Outcome(status="failed", error=message[1])

        task = asyncio.ensure_future(drain())
        stop = asyncio.ensure_future(cancelled.wait())
        try:
            done, _ = await asyncio.wait(
                {task, stop}, timeout=claimed.timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if task in done:
                result = task.result()
            else:
                task.cancel()
                result = (
                    Outcome(status="cancelled")
                    if cancelled.is_set()
                    else Outcome(
                        status="failed",
                        error=f"timed out after {claimed.timeout:g} s; its process was killed",
                    )
                )
        finally:
            stop.cancel()
            if process.is_alive():
                process.kill()
            await asyncio.to_thread(process.join, 10)
            try:
                loop.remove_reader(receive.fileno())
            except (ValueError, OSError):
                pass
            receive.close()
        result.metrics = metrics
        return result

    async def _finish(self, claimed: Claimed, workdir: Path, outcome: Outcome) -> Outcome:
        """Check the outputs against their declared types and store the declared artifacts."""
        if not isinstance(outcome.outputs, dict):
            return Outcome(
                status="failed", error=f"a step returns a dict or None, not {type(outcome.outputs).__name__}"
            )
        for name, type_name in claimed.spec.get("outputs", {}).items():
            if name not in outcome.outputs:
                return Outcome(status="failed", error=f"declared output {name!r} was not returned")
            try:
                outcome.outputs[name] = _adapter(type_name).validate_python(outcome.outputs[name])
            except ValidationError:
                return Outcome(
                    status="failed",
                    error=f"output {name!r} must be {type_name}, not {outcome.outputs[name]!r}",
                )
        try:
            import orjson

            orjson.dumps(outcome.outputs)
        except TypeError as exc:
            return Outcome(status="failed", error=f"outputs must be JSON values: {exc}")
        for name, kind in claimed.spec.get("artifacts", {}).items():
            path = workdir / "out" / name
            if not path.is_file():
                return Outcome(status="failed", error=f"declared artifact {name!r} was not written")
            stored = await asyncio.to_thread(
                self.store.put, path, run_id=claimed.run_id, step=claimed.name, name=name
            )
            outcome.artifacts.append((name, kind, stored))
        return outcome


def _child_entry(conn: Any, spec: dict[str, Any]) -> None:
    from hearth.workflows.child import main

    main(conn, spec)
