"""Tips tables: the profile (preferences, contexts, consents and their audit trail), connectors with their
vault entries and signals, agent outputs and runs, tips (`tip_scores`) and their feedback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hearth.platform.db import Base, new_id, utcnow
from hearth.platform.kit.time import UtcDateTime


def _user_fk() -> Any:
    return ForeignKey("users.id", ondelete="CASCADE")


class TipsPreferences(Base):
    __tablename__ = "tips_preferences"

    user_id: Mapped[str] = mapped_column(_user_fk(), primary_key=True)
    tone: Mapped[str] = mapped_column(String(32), nullable=False, default="friendly")
    tip_length: Mapped[str] = mapped_column(String(16), nullable=False, default="short")
    language: Mapped[str] = mapped_column(String(16), nullable=False, default="en")
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    work_start: Mapped[str] = mapped_column(String(5), nullable=False, default="09:00")
    work_end: Mapped[str] = mapped_column(String(5), nullable=False, default="17:00")
    channels: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    disabled_agents: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class TipsContext(Base):
    """A named situation ("at work", "on vacation"); at most one per user is active."""

    __tablename__ = "tips_contexts"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(_user_fk(), index=True, nullable=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class TipsConsent(Base):
    __tablename__ = "tips_consents"

    user_id: Mapped[str] = mapped_column(_user_fk(), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class TipsConsentLog(Base):
    """The audit trail: one row per grant or revocation, never updated."""

    __tablename__ = "tips_consent_log"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(_user_fk(), index=True, nullable=False)
    key: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)  # granted | revoked
    outputs_deleted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class TipsCredential(Base):
    """A vault entry: the secret is encrypted (Fernet) and never leaves the service in clear."""

    __tablename__ = "tips_credentials"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(_user_fk(), index=True, nullable=False)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    secret: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class TipsConnector(Base):
    __tablename__ = "tips_connectors"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(_user_fk(), index=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # todoist | markdown | ics
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    credential_id: Mapped[str | None] = mapped_column(
        ForeignKey("tips_credentials.id", ondelete="SET NULL"), nullable=True
    )
    cursor: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="new")  # new | ok | error
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_sync_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    next_sync_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class TipsSignal(Base):
    """What a connector fetched, one row per thing: an open or completed task, a project, a calendar event."""

    __tablename__ = "tips_signals"
    __table_args__ = (
        UniqueConstraint("connector_id", "kind", "external_id"),
        Index("ix_tips_signals_user_kind", "user_id", "kind"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(_user_fk(), nullable=False)
    connector_id: Mapped[str] = mapped_column(
        ForeignKey("tips_connectors.id", ondelete="CASCADE"), index=True, nullable=False
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # task.open | task.completed | project | …
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)
    title: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    project: Mapped[str | None] = mapped_column(String(200), nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)  # completed / starts
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class AgentOutput(Base):
    """One agent's pre-computed prompt snippet for one user, until `expires_at`."""

    __tablename__ = "agent_outputs"
    __table_args__ = (UniqueConstraint("user_id", "agent_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(_user_fk(), nullable=False)
    agent_id: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    agent_version: Mapped[str] = mapped_column(String(32), nullable=False)
    priority: Mapped[float] = mapped_column(Float, nullable=False)
    # [{"text": str, "ref": "connector_id:external_id" | None, "title": str | None}]
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True, nullable=False)


class AgentRun(Base):
    """One pre-compute pass of one agent (over all due users or one): the scheduler's log."""

    __tablename__ = "tips_agent_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    agent_id: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    agent_version: Mapped[str] = mapped_column(String(32), nullable=False)
    scope: Mapped[str] = mapped_column(String(32), nullable=False)  # all | <user id>
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    users: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    written: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    errors: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class TipScore(Base):
    """A tip served (the seed's `tip_scores`): its text, who contributed, the prompt and model behind it."""

    __tablename__ = "tip_scores"
    __table_args__ = (Index("ix_tip_scores_user_created", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(_user_fk(), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    subject_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    subject_title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    contributing_agents: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    prompt_version: Mapped[str] = mapped_column(String(32), nullable=False)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    fallback: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    fallback_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    assembly_ms: Mapped[float] = mapped_column(Float, nullable=False)
    model_ms: Mapped[float] = mapped_column(Float, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    snoozed_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class TipFeedback(Base):
    __tablename__ = "tip_feedback"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tip_id: Mapped[str] = mapped_column(ForeignKey("tip_scores.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(_user_fk(), index=True, nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)  # done | snooze | dismiss
    until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    source_closed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)
