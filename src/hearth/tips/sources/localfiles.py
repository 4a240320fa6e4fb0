"""Local task sources: a Markdown task list and an iCalendar (.ics) file, both under the tips folder of the
Hearth home (a user names a file relative to it; nothing outside it is read).

Markdown: `- [ ] title` and `- [x] title` items; a heading names the project of the items under it; a due
date is `due:YYYY-MM-DD` or `📅 YYYY-MM-DD`, a completion date `✅ YYYY-MM-DD`. Closing a task ticks its box.
iCalendar: VEVENTs become calendar events, VTODOs tasks (open, or completed when STATUS:COMPLETED)."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar

from hearth.tips.sources.base import Fetched, Item, SourceError

_ITEM = re.compile(r"^(\s*[-*+]\s+\[)([ xX])(\]\s+)(.*)$")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_DUE = re.compile(r"(?:due:|📅\s*)(\d{4}-\d{2}-\d{2})")
_DONE = re.compile(r"✅\s*(\d{4}-\d{2}-\d{2})")
MAX_BYTES = 5 * 1024 * 1024


def resolve(root: Path, relative: str) -> Path:
    """`relative` inside `root`, or a SourceError (absolute paths and `..` escapes are refused)."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise SourceError(f"{relative!r} is outside the tips folder")
    return path


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise SourceError(f"{path.name}: no such file")
    if path.stat().st_size > MAX_BYTES:
        raise SourceError(f"{path.name}: larger than {MAX_BYTES // 2**20} MiB")
    return path.read_bytes()


def _end_of_day(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=tz).astimezone(UTC)


def _task_id(project: str | None, title: str) -> str:
    return hashlib.sha1(f"{project or ''}\x00{title}".encode()).hexdigest()[:16]


def parse_markdown(text: str, tz: ZoneInfo) -> list[Item]:
    items: list[Item] = []
    project: str | None = None
    for line in text.splitlines():
        if heading := _HEADING.match(line):
            project = heading.group(1) or None
            continue
        match = _ITEM.match(line)
        if not match:
            continue
        body = match.group(4)
        due = _DUE.search(body)
        done = _DONE.search(body)
        title = _DONE.sub("", _DUE.sub("", body)).strip()
        if not title:
            continue
        checked = match.group(2) != " "
        items.append(
            Item(
                kind="task.completed" if checked else "task.open",
                external_id=_task_id(project, title),
                title=title[:500],
                project=project,
                due_at=_end_of_day(date.fromisoformat(due.group(1)), tz) if due else None,
                at=_end_of_day(date.fromisoformat(done.group(1)), tz) if done else None,
            )
        )
    return items


class MarkdownSource:
    def __init__(self, path: Path, *, timezone: ZoneInfo) -> None:
        self.path = path
        self.timezone = timezone

    async def fetch(self, cursor: dict[str, Any]) -> Fetched:
        raw = await asyncio.to_thread(_read, self.path)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SourceError(f"{self.path.name}: not UTF-8 text") from None
        items = parse_markdown(text, self.timezone)
        return Fetched(
            full={
                "task.open": [i for i in items if i.kind == "task.open"],
                "task.completed": [i for i in items if i.kind == "task.completed"],
            }
        )

    async def close_task(self, external_id: str) -> bool:
        return await asyncio.to_thread(self._tick, external_id)

    def _tick(self, external_id: str) -> bool:
        lines = _read(self.path).decode("utf-8").splitlines(keepends=True)
        project: str | None = None
        for i, line in enumerate(lines):
            if heading := _HEADING.match(line.rstrip("\n")):
                project = heading.group(1) or None
                continue
            match = _ITEM.match(line.rstrip("\r\n"))
            if not match or match.group(2) != " ":
                continue
            title = _DONE.sub("", _DUE.sub("", match.group(4))).strip()
            if _task_id(project, title) == external_id:
                end = line[len(line.rstrip("\r\n")) :]
                stamp = f" ✅ {datetime.now(UTC).date().isoformat()}"
                lines[i] = f"{match.group(1)}x{match.group(3)}{match.group(4)}{stamp}{end}"
                self.path.write_text("".join(lines), encoding="utf-8")
                return True
        return False


def _as_datetime(value: Any, tz: ZoneInfo, *, end_of_day: bool = False) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=tz)).astimezone(UTC)
    if isinstance(value, date):
        moment = time(23, 59, 59) if end_of_day else time(0, 0)
        return datetime.combine(value, moment, tzinfo=tz).astimezone(UTC)
    return None


def parse_ics(raw: bytes, tz: ZoneInfo) -> list[Item]:
    try:
        calendar = Calendar.from_ical(raw)
    except (ValueError, IndexError, KeyError) as exc:
        raise SourceError(f"not a valid iCalendar file ({exc})") from None
    items: list[Item] = []
    for component in calendar.walk():
        uid = str(component.get("uid") or "")
        summary = str(component.get("summary") or "").strip()
        if not uid or not summary:
            continue
        if component.name == "VEVENT":
            start = component.get("dtstart")
            end = component.get("dtend")
            items.append(
                Item(
                    "calendar.event",
                    uid[:128],
                    summary[:500],
                    at=_as_datetime(start.dt if start else None, tz),
                    due_at=_as_datetime(end.dt if end else None, tz, end_of_day=True),
                )
            )
        elif component.name == "VTODO":
            due = component.get("due")
            completed = component.get("completed")
            status = str(component.get("status") or "").upper()
            done = status == "COMPLETED" or completed is not None
            items.append(
                Item(
                    "task.completed" if done else "task.open",
                    uid[:128],
                    summary[:500],
                    project=str(component.get("categories").cats[0]) if component.get("categories") else None,
                    due_at=_as_datetime(due.dt if due else None, tz, end_of_day=True),
                    at=_as_datetime(completed.dt if completed else None, tz),
                )
            )
    return items


class IcsSource:
    def __init__(self, path: Path, *, timezone: ZoneInfo) -> None:
        self.path = path
        self.timezone = timezone

    async def fetch(self, cursor: dict[str, Any]) -> Fetched:
        raw = await asyncio.to_thread(_read, self.path)
        items = parse_ics(raw, self.timezone)
        kinds = ("calendar.event", "task.open", "task.completed")
        return Fetched(full={k: [i for i in items if i.kind == k] for k in kinds})

    async def close_task(self, external_id: str) -> bool:
        return False  # an .ics file is read-only here: the calendar app owns it
