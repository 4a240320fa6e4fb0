"""A fake Todoist API v1 on loopback, following the real API's shapes: bearer auth, cursor pagination
({"results" | "items": [...], "next_cursor": str | null} with `limit` and `cursor`), active tasks, projects,
completed tasks by completion date (`since`/`until`), and closing a task (204).

Switchable at run time: `rate_limited` answers that many requests with 429 + Retry-After first, `garbage`
answers HTML instead of JSON. Every request is logged (method, path, query) for assertions."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

MAX_LIMIT = 200


def task(
    id: str,
    content: str,
    *,
    project_id: str = "p-inbox",
    due: str | None = None,
    priority: int = 1,
    completed_at: str | None = None,
) -> dict[str, Any]:
    """A task object as Todoist's API v1 returns it."""
    return {
        "id": id,
        "user_id": "u-1",
        "project_id": project_id,
        "section_id": None,
        "parent_id": None,
        "added_by_uid": "u-1",
        "assigned_by_uid": None,
        "responsible_uid": None,
        "labels": [],
        "deadline": None,
        "duration": None,
        "checked": completed_at is not None,
        "is_deleted": False,
        "added_at": "2026-01-01T09:00:00.000000Z",
        "completed_at": completed_at,
        "updated_at": "2026-01-01T09:00:00.000000Z",
        "due": (
            {"date": due, "timezone": None, "string": due, "lang": "en", "is_recurring": False}
            if due
            else None
        ),
        "priority": priority,
        "child_order": 1,
        "content": content,
        "description": "",
        "note_count": 0,
        "day_order": -1,
        "is_collapsed": False,
    }


def project(id: str, name: str) -> dict[str, Any]:
    return {
        "id": id,
        "name": name,
        "color": "charcoal",
        "parent_id": None,
        "child_order": 1,
        "is_favorite": False,
        "is_archived": False,
        "is_deleted": False,
        "is_shared": False,
        "view_style": "list",
        "description": "",
        "inbox_project": id == "p-inbox",
        "created_at": "2026-01-01T09:00:00.000000Z",
        "updated_at": "2026-01-01T09:00:00.000000Z",
    }


@dataclass
class State:
    token: str = "todoist-secret-token"
    tasks: list[dict[str, Any]] = field(default_factory=list)
    projects: list[dict[str, Any]] = field(default_factory=lambda: [project("p-inbox", "Inbox")])
    completed: list[dict[str, Any]] = field(default_factory=list)
    rate_limited: int = 0  # answer the next N requests with 429
    garbage: bool = False
    log: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)


def _page(rows: list[dict[str, Any]], query: dict[str, list[str]], key: str) -> dict[str, Any]:
    limit = min(int(query.get("limit", ["50"])[0]), MAX_LIMIT)
    start = int(base64.urlsafe_b64decode(query["cursor"][0]).decode()) if "cursor" in query else 0
    end = start + limit
    cursor = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(rows) else None
    return {key: rows[start:end], "next_cursor": cursor}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:  # quiet
        return None

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body is not None:
            self.send_header(
                "Content-Type", "application/json" if not isinstance(body, bytes) else "text/html"
            )
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _handle(self, method: str) -> None:
        state = self.server.state
        url = urlparse(self.path)
        query = parse_qs(url.query)
        with self.server.lock:
            state.log.append((method, url.path, query))
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                return self._send(401, {"error": "Unauthorized"})
            if state.rate_limited > 0:
                state.rate_limited -= 1
                return self._send(429, {"error": "Too many requests"}, {"Retry-After": "0"})
            if state.garbage:
                return self._send(200, b"<html>maintenance</html>")
            if method == "GET" and url.path == "/api/v1/tasks":
                return self._send(200, _page(state.tasks, query, "results"))
            if method == "GET" and url.path == "/api/v1/projects":
                return self._send(200, _page(state.projects, query, "results"))
            if method == "GET" and url.path == "/api/v1/tasks/completed/by_completion_date":
                since = query.get("since", [""])[0]
                until = query.get("until", ["9999"])[0]
                if not since or not until:
                    return self._send(400, {"error": "since and until are required"})
                rows = [t for t in state.completed if since <= (t["completed_at"] or "") <= until]
                return self._send(200, _page(rows, query, "items"))
            parts = url.path.strip("/").split("/")
            if (
                method == "POST"
                and len(parts) == 5
                and parts[:3] == ["api", "v1", "tasks"]
                and parts[4] == "close"
            ):
                found = next((t for t in state.tasks if t["id"] == parts[3]), None)
                if found is None:
                    return self._send(404, {"error": "Task not found"})
                state.tasks.remove(found)
                now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                state.completed.append({**found, "checked": True, "completed_at": now})
                state.closed.append(parts[3])
                return self._send(204)
            return self._send(404, {"error": "Not found"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        self.lock = threading.Lock()


class FakeTodoist:
    def __init__(self, state: State | None = None) -> None:
        self.state = state or State()
        self._server = _Server(self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-todoist")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeTodoist:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def requests(self, path: str) -> list[dict[str, list[str]]]:
        return [q for _, p, q in self.state.log if p == path]
