"""Todoist's API v1 (https://developer.todoist.com/api/v1/): active tasks, projects and completed tasks,
cursor-paginated ({"results" | "items": [...], "next_cursor": str | null}), closing a task.

Completed tasks are fetched incrementally: the sync cursor keeps the end of the last window fetched, and the
next window starts a little before it so a task completed during a fetch is not missed. A 429 waits for
Retry-After (or an exponential backoff) and retries; 5xx and network errors retry the same way."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from hearth.tips.sources.base import Fetched, Item, SourceError

PAGE = 200
OVERLAP = timedelta(minutes=5)
FIRST_WINDOW = timedelta(days=14)


class TodoistSource:
    def __init__(
        self,
        token: str,
        *,
        base_url: str,
        timezone: ZoneInfo,
        retries: int = 4,
        backoff: float = 1.0,
        max_wait: float = 60.0,
        timeout: float = 30.0,
        now: datetime | None = None,
    ) -> None:
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.timezone = timezone
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.timeout = timeout
        self.now = now

    def __repr__(self) -> str:
        return f"TodoistSource({self.base_url})"  # never the token

    async def fetch(self, cursor: dict[str, Any]) -> Fetched:
        now = self.now or datetime.now(UTC)
        since = _parse_time(cursor.get("completed_until")) if cursor.get("completed_until") else None
        since = (since - OVERLAP) if since else now - FIRST_WINDOW
        async with self._session() as http:
            projects = {
                str(p["id"]): str(p.get("name") or "")
                for p in await self._pages(http, "/api/v1/projects", "results")
            }
            tasks = await self._pages(http, "/api/v1/tasks", "results")
            completed = await self._pages(
                http,
                "/api/v1/tasks/completed/by_completion_date",
                "items",
                since=_iso(since),
                until=_iso(now),
            )
        try:
            open_items = [self._task(t, projects, "task.open") for t in tasks if not t.get("checked")]
            done_items = [self._task(t, projects, "task.completed") for t in completed]
            project_items = [Item("project", pid, name) for pid, name in projects.items()]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SourceError(
                f"Todoist returned a task of an unexpected shape ({type(exc).__name__}: {exc})"
            ) from None
        return Fetched(
            full={"task.open": open_items, "project": project_items},
            changed=done_items,
            cursor={"completed_until": _iso(now)},
        )

    async def close_task(self, external_id: str) -> bool:
        async with self._session() as http:
            await self._request(http, "POST", f"/api/v1/tasks/{external_id}/close")
        return True

    # -- HTTP ---------------------------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self._token}"},
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        )

    async def _pages(self, http: aiohttp.ClientSession, path: str, key: str, **params: str) -> list[dict]:
        out: list[dict] = []
        cursor: str | None = None
        for _ in range(10_000):  # a server that never stops paginating is garbage, not a long list
            query = {**params, "limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
            body = await self._request(http, "GET", path, params=query)
            if not isinstance(body, dict) or not isinstance(body.get(key), list):
                raise SourceError(f"Todoist {path}: expected an object with a {key!r} list")
            if not all(isinstance(row, dict) for row in body[key]):
                raise SourceError(f"Todoist {path}: {key!r} holds something other than objects")
            out.extend(body[key])
            cursor = body.get("next_cursor")
            if not cursor:
                return out
            if not isinstance(cursor, str):
                raise SourceError(f"Todoist {path}: next_cursor is not a string")
        raise SourceError(f"Todoist {path}: pagination did not end")

    async def _request(self, http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any) -> Any:
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            wait: float | None = None
            try:
                async with http.request(method, url, **kwargs) as response:
                    if response.status == 429 or response.status >= 500:
                        wait = _retry_after(response.headers.get("Retry-After"))
                        problem = f"Todoist {path}: HTTP {response.status}"
                    elif response.status in (401, 403):
                        raise SourceError(f"Todoist refused the token (HTTP {response.status})")
                    elif response.status >= 400:
                        raise SourceError(f"Todoist {path}: HTTP {response.status}")
                    elif response.status == 204:
                        return None
                    else:
                        try:
                            return await response.json(content_type=None)
                        except ValueError:
                            raise SourceError(f"Todoist {path}: the response is not JSON") from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"Todoist {path}: {type(exc).__name__}"
            if attempt == self.retries:
                raise SourceError(f"{problem} (gave up after {self.retries + 1} tries)")
            delay = wait if wait is not None else self.backoff * 2**attempt
            await asyncio.sleep(min(delay, self.max_wait))
        raise AssertionError("unreachable")

    def _task(self, t: dict[str, Any], projects: dict[str, str], kind: str) -> Item:
        due = t.get("due") or None
        due_at = _due(due["date"], self.timezone) if isinstance(due, dict) and due.get("date") else None
        completed = t.get("completed_at")
        return Item(
            kind=kind,
            external_id=str(t["id"]),
            title=str(t["content"])[:500],
            project=projects.get(str(t.get("project_id"))) or None,
            due_at=due_at,
            at=_parse_time(completed) if completed else None,
            priority=int(t.get("priority") or 1),
        )


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _due(value: str, timezone: ZoneInfo) -> datetime:
    """A due date is due at the end of that day in the user's zone; a due time is due at that time (a
    floating time is read in the user's zone)."""
    if len(value) == 10:
        day = datetime.fromisoformat(value).date()
        return datetime.combine(day, time(23, 59, 59), tzinfo=timezone).astimezone(UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone)).astimezone(UTC)
