"""Request and response bodies of the tips routes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hearth.platform.kit.schemas import ORMModel
from hearth.platform.kit.time import UtcTimestamp

_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
ContextName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f/]+$")]
Channel = Literal["in_app", "email", "push"]


class Preferences(ORMModel):
    tone: str = "friendly"
    tip_length: Literal["short", "medium", "long"] = "short"
    language: str = "en"
    timezone: str = "UTC"
    work_start: str = "09:00"
    work_end: str = "17:00"
    channels: list[Channel] = ["in_app"]
    disabled_agents: list[str] = []


class PreferencesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tone: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[\w -]+$")] | None = None
    tip_length: Literal["short", "medium", "long"] | None = None
    language: (
        Annotated[str, Field(min_length=2, max_length=16, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]+)*$")] | None
    ) = None
    timezone: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    work_start: str | None = None
    work_end: str | None = None
    channels: Annotated[list[Channel], Field(max_length=3)] | None = None
    disabled_agents: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=100)] | None = (
        None
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Paris") from None
        return value

    @field_validator("work_start", "work_end")
    @classmethod
    def _clock(cls, value: str | None) -> str | None:
        if value is not None and not _CLOCK.match(value):
            raise ValueError("expected HH:MM (24-hour clock)")
        return value

    @model_validator(mode="after")
    def _order(self) -> PreferencesUpdate:
        if self.work_start and self.work_end and self.work_start >= self.work_end:
            raise ValueError("work_start must be before work_end")
        return self


class ContextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: Annotated[str, Field(max_length=500)] = ""


class ContextOut(ORMModel):
    name: str
    description: str
    active: bool
    created_at: UtcTimestamp


class ActiveContextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ContextName | None  # null: no context active


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    granted: bool


class ConsentOut(BaseModel):
    key: str
    description: str
    granted: bool
    updated_at: UtcTimestamp | None = None


class ConsentLogEntry(ORMModel):
    key: str
    action: str
    outputs_deleted: int
    at: UtcTimestamp


class Profile(BaseModel):
    preferences: Preferences
    contexts: list[ContextOut]
    active_context: str | None
    consents: list[ConsentOut]


class ConnectorIn(BaseModel):
    """A Todoist account (its API token) or a local file under the tips folder of the Hearth home."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["todoist", "markdown", "ics"]
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    token: Annotated[str, Field(min_length=1, max_length=500)] | None = None  # todoist
    path: Annotated[str, Field(min_length=1, max_length=500)] | None = None  # markdown | ics

    @model_validator(mode="after")
    def _fields_of_kind(self) -> ConnectorIn:
        if self.kind == "todoist" and (not self.token or self.path):
            raise ValueError("a todoist connector takes a token (and no path)")
        if self.kind != "todoist" and (not self.path or self.token):
            raise ValueError(f"a {self.kind} connector takes a path (and no token)")
        return self

    def __repr__(self) -> str:  # never the token
        return f"ConnectorIn(kind={self.kind!r}, name={self.name!r}, path={self.path!r})"


class ConnectorOut(ORMModel):
    """A connector as the API shows it: its state, never its credential."""

    id: str
    kind: str
    name: str
    path: str | None = None
    has_credential: bool
    status: str
    last_error: str | None
    failures: int
    last_sync_at: UtcTimestamp | None
    next_sync_at: UtcTimestamp
    signals: dict[str, int] = {}


class AgentOut(BaseModel):
    id: str
    version: str
    description: str
    consents: list[str]
    inputs: list[str]
    schedule_minutes: float
    ttl_minutes: float
    priority: float
    silenced_by: list[str]
    enabled: bool
    output_schema: dict[str, Any]
    eligible: bool  # for the caller, now
    reason: str | None  # why not, when not eligible


class OutputOut(ORMModel):
    agent_id: str
    agent_version: str
    priority: float
    lines: list[dict[str, Any]]
    data: dict[str, Any]
    computed_at: UtcTimestamp
    expires_at: UtcTimestamp


class NextTipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    candidates: Annotated[int, Field(ge=1, le=3)] = 1  # more than one: the judge alias picks
    # Also send the tip to the user's notification channels: the in-app inbox always, email and web push
    # only with the consents notify.email / notify.push (quiet hours and dedupe as the notify context rules).
    notify: bool = False


class TipOut(ORMModel):
    id: str
    text: str
    subject_ref: str | None
    subject_title: str | None
    contributing_agents: list[str]
    prompt_version: str
    model: str
    fallback: bool
    fallback_reason: str | None
    candidates: list[dict[str, Any]]
    score: float | None
    latency_ms: float
    assembly_ms: float
    model_ms: float
    status: str
    snoozed_until: UtcTimestamp | None
    expires_at: UtcTimestamp
    created_at: UtcTimestamp
    # With `notify`: one entry per delivery ("inapp: sent", "email: deferred"…); [] when the same tip was
    # already sent within the dedupe window. None when not asked.
    notified: list[str] | None = None


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["done", "snooze", "dismiss"]
    until: datetime | None = None  # snooze: when the tip may come back (with a time zone)

    @model_validator(mode="after")
    def _until(self) -> FeedbackIn:
        if self.action == "snooze" and self.until is None:
            raise ValueError("snooze needs until (a date-time with a time zone)")
        if self.action != "snooze" and self.until is not None:
            raise ValueError("until is only for snooze")
        if self.until is not None and self.until.tzinfo is None:
            raise ValueError("until needs a time zone (for example 2030-01-01T09:00:00Z)")
        return self


class FeedbackOut(BaseModel):
    tip_id: str
    action: str
    until: UtcTimestamp | None
    source_closed: bool
    source_error: str | None = None
