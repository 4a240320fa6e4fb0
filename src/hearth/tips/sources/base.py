"""What a source fetches and how it fails. A source knows one outside system; `tips.sync` stores what it
returns as signals, keeps its cursor, and retries it with backoff when it fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class SourceError(RuntimeError):
    """A fetch that failed; the message is shown as the connector's last error (never holds a secret)."""


@dataclass(frozen=True, slots=True)
class Item:
    kind: str  # task.open | task.completed | project | calendar.event
    external_id: str
    title: str
    project: str | None = None
    due_at: datetime | None = None
    at: datetime | None = None  # completed at / event start
    priority: int = 1


@dataclass
class Fetched:
    """`full`: every item of these kinds now (rows of a kind not listed here are left alone); `changed`:
    items to add or update (incremental, after the cursor); `cursor`: what the next fetch starts from."""

    full: dict[str, list[Item]] = field(default_factory=dict)
    changed: list[Item] = field(default_factory=list)
    cursor: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    async def fetch(self, cursor: dict[str, Any]) -> Fetched: ...

    async def close_task(self, external_id: str) -> bool:
        """Mark the task done at the source; False when this source cannot."""
        ...
