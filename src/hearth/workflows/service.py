"""The workflows service: pipelines stored with their versions, runs (create, list, get, cancel, logs,
artifacts), experiments and their comparison. Status changes themselves live in `engine.py`, execution in
`executor.py` (local) and `argo.py` (Argo Workflows)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from hearth.events.bus import EventBus
from hearth.platform.db import Database, new_id
from hearth.platform.errors import HearthError, bad_request, not_found
from hearth.platform.kit.leases import advisory_lock
from hearth.platform.kit.repository import or_404
from hearth.platform.kit.time import utcnow
from hearth.workflows import states
from hearth.workflows.artifacts import ArtifactMissing, ArtifactStore, LocalBackend
from hearth.workflows.engine import Engine
from hearth.workflows.events import PipelineRunCreated
from hearth.workflows.models import Artifact, Experiment, PipelineRow, Run, StepLog, StepRow
from hearth.workflows.pipeline import ARTIFACT_PARAM, Pipeline, coerce_params
from hearth.workflows.repository import ExperimentRepository, RunRepository
from hearth.workflows.schemas import (
    ArtifactOut,
    ComparedMetric,
    ComparedRun,
    Comparison,
    ExperimentOut,
    LogLine,
    LogPage,
    PipelineOut,
    RunCreate,
    RunDetail,
    RunOut,
    StepOut,
)

LOWER_IS_BETTER = ("loss", "_ms", "_s", "error", "errors", "latency")


def metric_goal(name: str, declared: dict[str, str]) -> str:
    """ "max" or "min" for a metric: as its pipeline declares (by full name, or the part after the last
    '.'), else "min" for losses, errors and latencies and "max" for the rest."""
    short = name.rsplit(".", 1)[-1]
    if name in declared or short in declared:
        return declared.get(name) or declared[short]
    return "min" if short.endswith(LOWER_IS_BETTER) else "max"


class WorkflowService:
    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        engine: Engine,
        store: ArtifactStore,
        pipelines: dict[str, Pipeline],
        on_created: Any = None,
        argo: Any = None,
        file_roots: list[Path] | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.engine = engine
        self.store = store
        self.pipelines = pipelines
        self.on_created = on_created or (lambda: None)
        self.argo = argo  # argo.ArgoSubmitter, or None when not configured
        # Where non-admins' file:// artifact parameters may point: the artifacts folder and configured roots.
        self.file_roots = [store.local.root, *(p.resolve() for p in file_roots or [])]

    # -- pipelines ----------------------------------------------------------------------------------

    async def register(self) -> dict[str, str]:
        """Store every known pipeline's definition under its version (name → stored version). A changed
        definition under an unchanged version is stored as `<version>+<digest>`: stored versions never
        change under the runs that used them."""
        # Servers starting together would each find a pipeline missing and insert it; the unique (name,
        # version) refuses all but one. On PostgreSQL they take turns; on SQLite (`--workers N`) the loser
        # reads again and finds the winner's rows.
        for _ in range(2):
            with contextlib.suppress(IntegrityError):
                return await self._register_once()
        return await self._register_once()

    async def _register_once(self) -> dict[str, str]:
        async with advisory_lock(self.db, "workflows.pipelines.register"):
            self.versions = await self._store_definitions()
        return self.versions

    async def _store_definitions(self) -> dict[str, str]:
        stored: dict[str, str] = {}
        async with self.db.transaction() as s:
            for pipeline in self.pipelines.values():
                definition, digest = pipeline.definition(), pipeline.digest()
                rows = (await s.scalars(select(PipelineRow).where(PipelineRow.name == pipeline.name))).all()
                same = next((r for r in rows if r.digest == digest), None)
                if same is not None:
                    stored[pipeline.name] = same.version
                    continue
                taken = {r.version for r in rows}
                version = (
                    pipeline.version if pipeline.version not in taken else f"{pipeline.version}+{digest[:8]}"
                )
                s.add(
                    PipelineRow(
                        id=new_id(),
                        name=pipeline.name,
                        version=version,
                        digest=digest,
                        description=pipeline.description,
                        definition={**definition, "version": version},
                    )
                )
                stored[pipeline.name] = version
        return stored

    @staticmethod
    def _pipeline_out(row: PipelineRow) -> PipelineOut:
        d = row.definition
        return PipelineOut(
            name=row.name,
            version=row.version,
            description=row.description,
            params=d["params"],
            metrics=d.get("metrics", {}),
            admin_only=d.get("admin_only", False),
            steps=d["steps"],
            created_at=row.created_at,
        )

    async def list_pipelines(self) -> list[PipelineOut]:
        """The pipelines this server runs, at the version it declares."""
        async with self.db.sessions() as s:
            rows = (
                await s.scalars(select(PipelineRow).order_by(PipelineRow.name, PipelineRow.created_at))
            ).all()
        current = getattr(self, "versions", {})
        return [self._pipeline_out(r) for r in rows if current.get(r.name) == r.version]

    async def get_pipeline(self, name: str, version: str | None = None) -> PipelineOut:
        async with self.db.sessions() as s:
            row = await self._pipeline_row(s, name, version)
        return self._pipeline_out(row)

    async def _pipeline_row(self, s: Any, name: str, version: str | None) -> PipelineRow:
        if name not in self.pipelines:
            known = ", ".join(sorted(self.pipelines)) or "none"
            raise not_found(f"no pipeline {name!r}; this server has: {known}", param="pipeline")
        version = version or self.versions[name]
        row = await s.scalar(
            select(PipelineRow).where(PipelineRow.name == name, PipelineRow.version == version)
        )
        return or_404(row, f"pipeline {name!r} has no version {version!r}", param="version")

    # -- runs ---------------------------------------------------------------------------------------

    async def create_run(self, *, user_id: str, body: RunCreate, is_admin: bool = True) -> RunOut:
        """Check the parameters (types, required, artifacts that must exist and the caller may read), then
        store the run and its steps as pending with a `PipelineRunCreated` event, in one transaction."""
        async with self.db.sessions() as s:
            row = await self._pipeline_row(s, body.pipeline, body.version)
        if row.definition.get("admin_only") and not is_admin:
            raise HearthError(403, f"only admins may run {row.name!r}", code="admin_only")
        declared = row.definition["params"]
        try:
            params = coerce_params(declared, body.params)
        except ValueError as exc:
            raise HearthError(422, str(exc), param="params", code="invalid_params") from None
        for name, spec in declared.items():
            wanted = spec["type"] == ARTIFACT_PARAM and params.get(name)
            if wanted and not is_admin and not self._readable(params[name]):
                raise HearthError(
                    403,
                    f"parameter {name!r}: {params[name]} is outside the folders you may read "
                    "(artifacts, HEARTH_WORKFLOWS_FILE_ROOTS); upload it to S3 or ask an admin",
                    param=f"params.{name}",
                    code="artifact_forbidden",
                )
            if wanted and not await asyncio.to_thread(self.store.exists, params[name]):
                raise HearthError(
                    422,
                    f"parameter {name!r}: artifact {params[name]} does not exist",
                    param=f"params.{name}",
                    code="missing_artifact",
                )
        if body.executor == "argo" and self.argo is None:
            raise bad_request(
                "Argo is not configured on this server", param="executor", code="argo_unavailable"
            )
        run_id = new_id()
        async with self.db.transaction() as s:
            experiment_id = None
            if body.experiment:
                experiment_id = await self._experiment_id(s, user_id, body.experiment)
            now = utcnow()
            run = Run(
                id=run_id,
                owner_id=user_id,
                pipeline_id=row.id,
                pipeline=row.name,
                version=row.version,
                experiment_id=experiment_id,
                status="pending",
                executor=body.executor,
                params=params,
                metrics={},
                created_at=now,
            )
            s.add(run)
            await s.flush()
            for position, step in enumerate(row.definition["steps"]):
                s.add(
                    StepRow(
                        id=new_id(),
                        run_id=run_id,
                        name=step["name"],
                        position=position,
                        after=step["after"],
                        status="pending",
                        attempt=0,
                        retries=step["retries"],
                        timeout=step["timeout"],
                        outputs={},
                        created_at=now,
                    )
                )
            await self.bus.publish(
                PipelineRunCreated(
                    run_id=run_id,
                    owner_id=user_id,
                    pipeline=row.name,
                    version=row.version,
                    executor=body.executor,
                    experiment_id=experiment_id,
                ),
                session=s,
            )
        if body.executor == "argo":
            await self._submit_argo(run_id)
        else:
            self.on_created()
        return await self.get_run(user_id=user_id, run_id=run_id)

    def _readable(self, uri: str) -> bool:
        """Whether a non-admin may name this artifact URI: any s3:// one (the bucket's own access rules
        apply); a file:// one only under the artifacts folder or a configured root, never the server's
        other files."""
        if not uri.startswith("file:"):
            return True
        try:
            path = LocalBackend.path(uri).resolve()
        except ArtifactMissing:
            return False
        return any(path.is_relative_to(root) for root in self.file_roots)

    async def _submit_argo(self, run_id: str) -> None:
        async with self.db.sessions() as s:
            run = await s.get(Run, run_id)
            assert run is not None
            definition = await self.engine.definition(s, run.pipeline_id)
        try:
            await asyncio.to_thread(self.argo.submit, run_id=run_id, definition=definition)
        except Exception as exc:
            message = f"Argo submission failed: {exc}"
            await self.engine.fail_run(run_id, message)
            raise HearthError(502, message, code="argo_submit_failed") from None

    async def _experiment_id(self, s: Any, user_id: str, name: str) -> str:
        repo = ExperimentRepository(s, owner_id=user_id)
        found = await s.scalar(repo.select().where(Experiment.name == name))
        if found is not None:
            return found.id
        experiment = Experiment(id=new_id(), owner_id=user_id, name=name, description="")
        s.add(experiment)
        await s.flush()
        return experiment.id

    async def list_runs(
        self,
        *,
        user_id: str,
        status: str | None = None,
        pipeline: str | None = None,
        experiment_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RunOut]:
        async with self.db.sessions() as s:
            repo = RunRepository(s, owner_id=user_id)
            stmt = repo.select().order_by(Run.created_at.desc(), Run.id)
            if status:
                stmt = stmt.where(Run.status == status)
            if pipeline:
                stmt = stmt.where(Run.pipeline == pipeline)
            if experiment_id:
                stmt = stmt.where(Run.experiment_id == experiment_id)
            rows = await repo.list(stmt, limit=limit, offset=offset)
        return [RunOut.model_validate(r) for r in rows]

    async def get_run(self, *, user_id: str, run_id: str) -> RunDetail:
        async with self.db.sessions() as s:
            run = await RunRepository(s, owner_id=user_id).get_or_404(run_id)
            steps = (
                await s.scalars(select(StepRow).where(StepRow.run_id == run_id).order_by(StepRow.position))
            ).all()
            artifacts = (
                await s.scalars(
                    select(Artifact).where(Artifact.run_id == run_id).order_by(Artifact.created_at)
                )
            ).all()
        return RunDetail.model_validate(
            {
                **RunOut.model_validate(run).model_dump(),
                "steps": [StepOut.model_validate(x) for x in steps],
                "artifacts": [ArtifactOut.model_validate(a) for a in artifacts],
            }
        )

    async def cancel_run(self, *, user_id: str, run_id: str) -> RunDetail:
        """Pending or running → cancelled; its running steps are stopped within a heartbeat."""
        async with self.db.transaction() as s:
            run = await RunRepository(s, owner_id=user_id).get_or_404(run_id, lock=True)
            if run.status in states.RUN_TERMINAL:
                raise HearthError(409, f"run {run_id} already {run.status}", code="run_finished")
            await self.engine.cancel(s, run)
        if self.argo is not None and run.executor == "argo":
            await asyncio.to_thread(self.argo.stop, run_id=run_id)
        return await self.get_run(user_id=user_id, run_id=run_id)

    async def logs(
        self, *, user_id: str, run_id: str, step: str | None = None, after: int = 0, limit: int = 500
    ) -> LogPage:
        async with self.db.sessions() as s:
            run = await RunRepository(s, owner_id=user_id).get_or_404(run_id)
            stmt = select(StepLog).where(StepLog.run_id == run_id, StepLog.seq > after)
            if step:
                stmt = stmt.where(StepLog.step == step)
            rows = (await s.scalars(stmt.order_by(StepLog.seq).limit(limit))).all()
        return LogPage(
            data=[LogLine.model_validate(r) for r in rows],
            next_after=rows[-1].seq if rows else after,
            run_status=run.status,  # type: ignore[arg-type]
        )

    async def artifact(
        self, *, user_id: str, run_id: str, artifact: str
    ) -> tuple[ArtifactOut, Iterator[bytes]]:
        """An artifact of a run (by id, or `step.name`) and its bytes."""
        async with self.db.sessions() as s:
            await RunRepository(s, owner_id=user_id).get_or_404(run_id)
            stmt = select(Artifact).where(Artifact.run_id == run_id)
            if "." in artifact:
                step, _, name = artifact.partition(".")
                stmt = stmt.where(Artifact.step == step, Artifact.name == name)
            else:
                stmt = stmt.where(Artifact.id == artifact)
            row = or_404(await s.scalar(stmt), f"run {run_id} has no artifact {artifact!r}", param="artifact")
        out = ArtifactOut.model_validate(row)
        if not await asyncio.to_thread(self.store.exists, row.uri):
            raise not_found(
                f"artifact {artifact!r} is recorded but its object {row.uri} is missing",
                code="artifact_missing",
            )
        try:
            return out, self.store.iter_bytes(row.uri)
        except ArtifactMissing as exc:
            raise not_found(str(exc), code="artifact_missing") from None

    # -- experiments --------------------------------------------------------------------------------

    async def list_experiments(self, *, user_id: str) -> list[ExperimentOut]:
        async with self.db.sessions() as s:
            repo = ExperimentRepository(s, owner_id=user_id)
            rows = (await s.scalars(repo.select().order_by(Experiment.created_at))).all()
            counts = dict(
                (
                    await s.execute(
                        select(Run.experiment_id, func.count())
                        .where(Run.owner_id == user_id, Run.experiment_id.is_not(None))
                        .group_by(Run.experiment_id)
                    )
                ).all()
            )
        return [
            ExperimentOut(
                id=r.id,
                name=r.name,
                description=r.description,
                runs=counts.get(r.id, 0),
                created_at=r.created_at,
            )
            for r in rows
        ]

    async def experiment_runs(self, *, user_id: str, experiment: str) -> list[str]:
        """The ids of an experiment's runs (by experiment id or name), oldest first."""
        async with self.db.sessions() as s:
            repo = ExperimentRepository(s, owner_id=user_id)
            row = await s.scalar(
                repo.select().where((Experiment.id == experiment) | (Experiment.name == experiment))
            )
            row = or_404(row, f"no experiment {experiment!r}", param="experiment_id")
            ids = await s.scalars(
                select(Run.id)
                .where(Run.experiment_id == row.id, Run.owner_id == user_id)
                .order_by(Run.created_at)
            )
            return list(ids.all())

    async def compare(self, *, user_id: str, run_ids: list[str]) -> Comparison:
        """Runs side by side: their parameters (and which differ) and each metric with the run that won."""
        if not run_ids:
            raise bad_request("name at least one run to compare", param="runs")
        async with self.db.sessions() as s:
            repo = RunRepository(s, owner_id=user_id)
            runs = [await repo.get_or_404(r) for r in dict.fromkeys(run_ids)]
            goals: dict[str, str] = {}
            for run in runs:
                goals.update((await self.engine.definition(s, run.pipeline_id)).get("metrics", {}))
        names = sorted({k for r in runs for k in r.params})
        differing = [n for n in names if len({repr(r.params.get(n)) for r in runs}) > 1]
        metrics = []
        for name in sorted({k for r in runs for k in r.metrics}):
            goal = metric_goal(name, goals)
            values = {r.id: r.metrics.get(name) for r in runs}
            present = {k: v for k, v in values.items() if v is not None}
            best = None
            if len(present) > 1:
                top = (max if goal == "max" else min)(present.values())
                winners = [k for k, v in present.items() if v == top]
                best = winners[0] if len(winners) == 1 else None
            elif len(present) == 1 and len(runs) == 1:
                best = next(iter(present))
            metrics.append(ComparedMetric(name=name, goal=goal, values=values, best=best))  # type: ignore[arg-type]
        return Comparison(
            runs=[
                ComparedRun(
                    id=r.id,
                    pipeline=r.pipeline,
                    status=r.status,
                    params=r.params,
                    metrics=r.metrics,
                    created_at=r.created_at,  # type: ignore[arg-type]
                )
                for r in runs
            ],
            params_differing=differing,
            metrics=metrics,
        )
