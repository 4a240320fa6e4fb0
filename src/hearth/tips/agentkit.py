"""What an agent function receives and returns. An agent is a pure function of one user's signals and
profile: no I/O, no database, no model calls, so pre-compute can run it for thousands of users per second."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Task:
    """A task signal (kinds task.open and task.completed); `ref` is "<connector id>:<external id>"."""

    ref: str
    title: str
    project: str | None
    due_at: datetime | None
    completed_at: datetime | None
    priority: int


@dataclass(frozen=True, slots=True)
class Event:
    """A calendar event signal (calendar.event)."""

    ref: str
    title: str
    starts_at: datetime | None
    ends_at: datetime | None


@dataclass(frozen=True, slots=True)
class Feedback:
    """What the user did with an earlier tip (tip.feedback)."""

    action: str  # done | snooze | dismiss
    at: datetime
    subject: str | None


@dataclass(frozen=True, slots=True)
class AgentInput:
    user_id: str
    now: datetime  # aware UTC
    timezone: ZoneInfo
    work_start: time
    work_end: time
    signals: dict[str, list[Any]]  # by kind; only the kinds the manifest lists as inputs

    def local_now(self) -> datetime:
        return self.now.astimezone(self.timezone)


@dataclass(frozen=True, slots=True)
class Line:
    """One sentence of a snippet; `ref` names the task it is about, so snoozed or dismissed tasks are left
    out when the prompt is assembled."""

    text: str
    ref: str | None = None
    title: str | None = None


@dataclass(slots=True)
class AgentResult:
    lines: list[Line]
    data: dict[str, Any] = field(default_factory=dict)  # validated against the manifest's output_schema
    priority: float | None = None  # None: the manifest's priority
