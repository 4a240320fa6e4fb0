"""The consent keys Hearth knows, and the signal kinds agents may read. A manifest naming anything else is
refused at start-up, so a typo cannot silently make an agent run without the consent it needs."""

from __future__ import annotations

CONSENTS: dict[str, str] = {
    "tasks.read": "read your tasks and projects from connected sources",
    "tasks.write": "mark a task done at its source when you say a tip is done",
    "calendar.read": "read events from connected calendars",
    "history.read": "use what you did with earlier tips (done, snoozed, dismissed)",
    "notify.email": "send tips by email",
    "notify.push": "send tips as web push notifications",
}

# Signal kinds an agent may list as inputs, and the consent each one needs to be read at all.
SIGNAL_KINDS: dict[str, str | None] = {
    "task.open": "tasks.read",
    "task.completed": "tasks.read",
    "project": "tasks.read",
    "calendar.event": "calendar.read",
    "tip.feedback": "history.read",
}
