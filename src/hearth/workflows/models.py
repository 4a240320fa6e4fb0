"""Workflow tables: pipelines (name + version, the stored definition), runs and their steps, step logs,
artifacts (by URI) and experiments. Runs and experiments belong to a user; pipelines are shared."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hearth.platform.db import Base, TimestampMixin
from hearth.platform.kit.time import UtcDateTime


class PipelineRow(TimestampMixin, Base):
    __tablename__ = "wf_pipelines"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    version: Mapped[str] = mapped_column(String(64), nullable=False)
    digest: Mapped[str] = mapped_column(String(32), nullable=False)  # of the definition
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


class Experiment(TimestampMixin, Base):
    __tablename__ = "wf_experiments"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")


class Run(TimestampMixin, Base):
    __tablename__ = "wf_runs"
    __table_args__ = (
        Index("ix_wf_runs_owner_created", "owner_id", "created_at"),
        Index("ix_wf_runs_status_executor", "status", "executor"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    pipeline_id: Mapped[str] = mapped_column(ForeignKey("wf_pipelines.id"), nullable=False)
    pipeline: Mapped[str] = mapped_column(String(128), nullable=False)
    version: Mapped[str] = mapped_column(String(64), nullable=False)
    experiment_id: Mapped[str | None] = mapped_column(
        ForeignKey("wf_experiments.id", ondelete="SET NULL"), nullable=True, index=True
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    executor: Mapped[str] = mapped_column(String(16), nullable=False, default="local")  # local | argo
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    metrics: Mapped[dict[str, float]] = mapped_column(JSON, nullable=False, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class StepRow(Base):
    __tablename__ = "wf_steps"
    __table_args__ = (
        UniqueConstraint("run_id", "name"),
        Index("ix_wf_steps_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("wf_runs.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    after: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # attempts started so far
    retries: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    timeout: Mapped[float | None] = mapped_column(Float, nullable=True)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)  # who runs it now
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    ready_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class StepLog(Base):
    __tablename__ = "wf_step_logs"
    __table_args__ = (Index("ix_wf_step_logs_run_seq", "run_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("wf_runs.id", ondelete="CASCADE"), nullable=False)
    step: Mapped[str] = mapped_column(String(128), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    line: Mapped[str] = mapped_column(Text, nullable=False)


class Artifact(TimestampMixin, Base):
    __tablename__ = "wf_artifacts"
    __table_args__ = (UniqueConstraint("run_id", "step", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("wf_runs.id", ondelete="CASCADE"), nullable=False)
    step: Mapped[str] = mapped_column(String(128), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    uri: Mapped[str] = mapped_column(String(1024), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    inline: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
