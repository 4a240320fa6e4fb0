"""The workflows part of a user's personal data: their runs (parameters, steps, logs, metrics), experiments
and the artifacts their runs wrote. Pipelines are shared definitions, not personal data. Artifacts live in the
artifact store (the data dir or S3), so erasure removes the objects the user's runs produced, then the rows
(steps, logs and artifact rows go with their run by foreign key)."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, select

from hearth.platform.db import Database
from hearth.platform.personal_data import Rows, row_dict
from hearth.workflows.artifacts import ArtifactMissing, ArtifactStore
from hearth.workflows.models import Artifact, Experiment, Run, StepLog, StepRow


class WorkflowsPersonalData:
    context = "workflows"

    def __init__(self, db: Database, store: ArtifactStore) -> None:
        self.db = db
        self.store = store

    async def export_user(self, user_id: str) -> Rows:
        async with self.db.sessions() as s:
            runs = (
                await s.scalars(select(Run).where(Run.owner_id == user_id).order_by(Run.created_at))
            ).all()
            ids = [r.id for r in runs]
            steps = (await s.scalars(select(StepRow).where(StepRow.run_id.in_(ids)))).all() if ids else []
            logs = (await s.scalars(select(StepLog).where(StepLog.run_id.in_(ids)))).all() if ids else []
            artifacts = (
                (await s.scalars(select(Artifact).where(Artifact.run_id.in_(ids)))).all() if ids else []
            )
            experiments = (await s.scalars(select(Experiment).where(Experiment.owner_id == user_id))).all()
            return {
                "runs": [row_dict(r) for r in runs],
                "steps": [row_dict(r) for r in steps],
                "logs": [row_dict(r) for r in logs],
                "artifacts": [row_dict(r) for r in artifacts],
                "experiments": [row_dict(r) for r in experiments],
            }

    async def erase_user(self, user_id: str) -> None:
        async with self.db.sessions() as s:
            uris = (
                await s.scalars(
                    select(Artifact.uri).join(Run, Run.id == Artifact.run_id).where(Run.owner_id == user_id)
                )
            ).all()
        for uri in uris:
            try:
                await asyncio.to_thread(self.store.delete, uri)
            except ArtifactMissing:
                pass
        async with self.db.transaction() as s:
            runs = select(Run.id).where(Run.owner_id == user_id)
            for table in (Artifact, StepLog, StepRow):
                await s.execute(delete(table).where(table.run_id.in_(runs)))
            await s.execute(delete(Run).where(Run.owner_id == user_id))
            await s.execute(delete(Experiment).where(Experiment.owner_id == user_id))
