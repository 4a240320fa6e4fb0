"""Shared by the tips tests: a fake Todoist with overdue and fresh tasks; users and keys via the admin API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.fake_todoist import FakeTodoist, State, project, task
from tests.harness import RunningHearth

TASK_AGENTS = {"overdue-tasks", "momentum", "focus-area"}


def day(offset: int) -> str:
    return (datetime.now(UTC) + timedelta(days=offset)).date().isoformat()


def stamp(offset_days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=offset_days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def todoist_state() -> State:
    """Two overdue tasks, two fresh ones, two completed in the last days."""
    state = State()
    state.projects += [project("p-work", "Work"), project("p-home", "Home")]
    state.tasks = [
        task("t-report", "Send the quarterly report", project_id="p-work", due=day(-3), priority=4),
        task("t-bill", "Pay the electricity bill", project_id="p-home", due=day(-1), priority=3),
        task("t-offsite", "Plan the team offsite", project_id="p-work", due=day(10)),
        task("t-slides", "Draft the roadmap slides", project_id="p-work"),
    ]
    state.completed = [
        task("t-done1", "Renew the passport", project_id="p-home", completed_at=stamp(-1)),
        task("t-done2", "Review the budget", project_id="p-work", completed_at=stamp(-0.01)),
    ]
    return state


def start_todoist(state: State | None = None) -> FakeTodoist:
    return FakeTodoist(state or todoist_state()).start()


def new_user_key(hearth: RunningHearth, name: str) -> str:
    created = httpx.post(f"{hearth.url}/api/admin/users", json={"username": name}, headers=hearth.headers())
    assert created.status_code == 201, created.text
    key = httpx.post(f"{hearth.url}/api/admin/keys", json={"user": name}, headers=hearth.headers())
    assert key.status_code == 201, key.text
    return key.json()["key"]


class Client:
    """The tips API as one user sees it."""

    def __init__(self, hearth: RunningHearth, key: str) -> None:
        self.http = httpx.Client(base_url=f"{hearth.url}/api/tips", headers=hearth.headers(key), timeout=300)

    def consent(self, key: str, granted: bool) -> httpx.Response:
        return self.http.put(f"/profile/consents/{key}", json={"granted": granted})

    def ok(self, response: httpx.Response, status: int = 200) -> dict:
        assert response.status_code == status, response.text
        return response.json() if response.content else {}
