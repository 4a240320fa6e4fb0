"""The tips API over HTTP with a fake model upstream (tests/fake_openai.py) so the model's words are chosen:
the deterministic fallback, done at the source, dismiss, expiry, the judge, and bad input."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from hearth.platform.db import Database
from hearth.tips.models import TipScore
from tests.fake_openai import Behaviour, FakeOpenAI
from tests.harness import RunningHearth, run_hearth
from tests.tips_helpers import Client, new_user_key, start_todoist


def _config(url: str) -> dict:
    deployment = [{"backend": "fake", "model": "m", "max_retries": 0}]
    return {
        "include_defaults": False,
        "backends": {"fake": {"type": "openai", "base_url": url}},
        "aliases": {
            "tip-generator": {"kind": "chat", "deployments": deployment},
            "judge": {"kind": "chat", "deployments": deployment},
        },
    }


ECHO = "(overdue-tasks) Notes: ..."


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[RunningHearth, FakeOpenAI, object]]:  # type: ignore[no-untyped-def]
    """One server for the module (each test uses its own user); the model echoes the prompt by default."""
    tmp_path = tmp_path_factory.mktemp("tips-api")
    upstream = FakeOpenAI(Behaviour(reply=ECHO)).start()
    todoist = start_todoist()
    settings = {"tips_todoist_url": todoist.url, "tips_tick_seconds": 0, "tips_http_backoff_seconds": 0}
    try:
        with run_hearth(tmp_path, _config(upstream.url), **settings) as hearth:
            yield hearth, upstream, todoist
    finally:
        todoist.stop()
        upstream.stop()


@pytest.fixture
def world(server):  # type: ignore[no-untyped-def]
    _hearth, upstream, todoist = server
    upstream.behaviour.reply = ECHO
    todoist.state.closed.clear()
    return server


def _connected(hearth: RunningHearth, todoist, name: str, *consents: str) -> Client:  # type: ignore[no-untyped-def]
    user = Client(hearth, new_user_key(hearth, name))
    for key in consents:
        user.ok(user.consent(key, True))
    connector = user.ok(
        user.http.post("/connectors", json={"kind": "todoist", "token": todoist.state.token}), 201
    )
    assert user.ok(user.http.post(f"/connectors/{connector['id']}/sync"))["status"] == "ok"
    return user


def test_unusable_output_falls_back_and_done_closes_the_task_at_todoist(world) -> None:  # type: ignore[no-untyped-def]
    hearth, _upstream, todoist = world
    ann = _connected(hearth, todoist, "ann", "tasks.read", "tasks.write")
    tip = ann.ok(ann.http.post("/next"))
    # The model echoed the prompt: the tip comes from the top snippet (the most overdue task), flagged.
    assert tip["fallback"] is True and tip["fallback_reason"] == "off-format: echoes the prompt"
    assert tip["contributing_agents"] == ["overdue-tasks"]
    assert tip["subject_title"] == "Send the quarterly report" and "Send the quarterly report" in tip["text"]
    assert tip["model"] == "tip-generator:fake/m"

    done = ann.ok(ann.http.post(f"/{tip['id']}/feedback", json={"action": "done"}))
    assert done["source_closed"] is True and done["source_error"] is None
    assert todoist.state.closed == ["t-report"]
    again = ann.http.post(f"/{tip['id']}/feedback", json={"action": "dismiss"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "tip_closed"

    # Dismissed: that task's tip does not come back; the next one is about the other overdue task.
    second = ann.ok(ann.http.post("/next"))
    assert second["subject_title"] == "Pay the electricity bill"
    ann.ok(ann.http.post(f"/{second['id']}/feedback", json={"action": "dismiss"}))
    third = ann.ok(ann.http.post("/next"))
    assert third["subject_title"] not in ("Send the quarterly report", "Pay the electricity bill")
    history = ann.ok(ann.http.get(f"{hearth.url}/api/tips", params={"limit": 10}))
    assert [t["status"] for t in history[:3]] == ["open", "dismissed", "done"]


def test_a_tip_asked_with_notify_reaches_the_inbox_once(world) -> None:  # type: ignore[no-untyped-def]
    """`notify: true` sends the tip through the notify context: the in-app inbox always, email and push only
    with their consents (none here); the same wording within the dedupe window is not sent again."""
    hearth, _upstream, todoist = world
    cai = _connected(hearth, todoist, "cai", "tasks.read")
    quiet = cai.ok(cai.http.post("/next"))
    assert quiet["notified"] is None
    tip = cai.ok(cai.http.post("/next", json={"notify": True}))
    assert tip["notified"] == ["inapp: sent"]
    inbox = cai.ok(cai.http.get(f"{hearth.url}/api/notify/inbox"))
    items = inbox["data"]
    assert [(i["topic"], i["body"], i["url"]) for i in items] == [("tip", tip["text"], "/tips")]
    # Another user sees none of it.
    dan = Client(hearth, new_user_key(hearth, "dan-notify"))
    assert dan.ok(dan.http.get(f"{hearth.url}/api/notify/inbox"))["data"] == []


def test_agents_call_tips_next_as_a_tool(world) -> None:  # type: ignore[no-untyped-def]
    """The agents context's tool registry has `tips_next` (crews and MCP clients use it) for the caller."""
    hearth, _upstream, todoist = world
    eli = _connected(hearth, todoist, "eli", "tasks.read")
    tools = eli.ok(eli.http.get(f"{hearth.url}/api/agents/tools"))
    assert "tips_next" in {t["name"] for t in tools}
    called = eli.ok(eli.http.post(f"{hearth.url}/api/agents/tools/tips_next", json={"arguments": {}}))
    assert called["ok"] is True, called
    assert called["result"]["contributing_agents"] == ["overdue-tasks"] and called["result"]["text"]
    mine = eli.ok(eli.http.get(f"{hearth.url}/api/tips", params={"limit": 5}))
    assert called["result"]["id"] in {t["id"] for t in mine}
    too_many = {"arguments": {"candidates": 9}}
    bad = eli.http.post(f"{hearth.url}/api/agents/tools/tips_next", json=too_many)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_tool_arguments"


def test_done_without_tasks_write_is_recorded_but_not_sent(world) -> None:  # type: ignore[no-untyped-def]
    hearth, _, todoist = world
    bea = _connected(hearth, todoist, "bea", "tasks.read")
    tip = bea.ok(bea.http.post("/next"))
    done = bea.ok(bea.http.post(f"/{tip['id']}/feedback", json={"action": "done"}))
    assert done["source_closed"] is False and "tasks.write" in done["source_error"]
    assert todoist.state.closed == []


def test_judge_grades_candidates_when_more_than_one_is_asked(world) -> None:  # type: ignore[no-untyped-def]
    hearth, upstream, todoist = world
    upstream.behaviour.reply = "Spend 7 focused minutes on the quarterly report before lunch."
    cy = _connected(hearth, todoist, "cy", "tasks.read")
    tip = cy.ok(cy.http.post("/next", json={"candidates": 2}))
    assert tip["fallback"] is False and tip["text"] == upstream.behaviour.reply
    assert tip["score"] == 7.0 and len(tip["candidates"]) == 2
    assert tip["subject_title"] is None or tip["subject_title"] == "Send the quarterly report"
    # Snoozed: the same words are a repeat until the snooze ends, so the fallback answers instead.
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    cy.ok(cy.http.post(f"/{tip['id']}/feedback", json={"action": "snooze", "until": until}))
    nxt = cy.ok(cy.http.post("/next"))
    assert nxt["fallback"] is True and nxt["fallback_reason"] == "repeats a tip you snoozed"
    assert nxt["text"] != tip["text"]


def test_feedback_errors(world) -> None:  # type: ignore[no-untyped-def]
    hearth, _, todoist = world
    dee = _connected(hearth, todoist, "dee", "tasks.read")
    tip = dee.ok(dee.http.post("/next"))
    url = f"/{tip['id']}/feedback"
    cases = [
        ({"action": "snooze"}, 422),  # no until
        ({"action": "snooze", "until": "2020-01-01T00:00:00Z"}, 422),  # in the past
        ({"action": "snooze", "until": "2099-01-01T00:00:00"}, 422),  # no time zone
        ({"action": "dismiss", "until": "2099-01-01T00:00:00Z"}, 422),
        ({"action": "later"}, 422),
    ]
    for body, status in cases:
        response = dee.http.post(url, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["message"]
    assert dee.http.post("/nope/feedback", json={"action": "done"}).status_code == 404

    async def expire() -> None:
        db = Database(hearth.settings.resolved_database_url)
        async with db.transaction() as s:
            await s.execute(
                update(TipScore)
                .where(TipScore.id == tip["id"])
                .values(expires_at=datetime.now(UTC) - timedelta(1))
            )
        await db.close()

    asyncio.run(expire())
    expired = dee.http.post(url, json={"action": "done"})
    assert expired.status_code == 409 and expired.json()["error"]["code"] == "tip_expired"
    assert "expired" in expired.json()["error"]["message"]


def test_profile_routes_and_bad_input(world) -> None:  # type: ignore[no-untyped-def]
    hearth, _, _ = world
    eve = Client(hearth, new_user_key(hearth, "eve"))
    profile = eve.ok(eve.http.get("/profile"))
    assert profile["active_context"] is None and {c["key"] for c in profile["consents"]} >= {"tasks.read"}
    assert not any(c["granted"] for c in profile["consents"])

    prefs = eve.ok(
        eve.http.patch("/profile/preferences", json={"timezone": "Europe/Paris", "work_start": "08:30"})
    )
    assert (
        prefs["timezone"] == "Europe/Paris"
        and prefs["work_start"] == "08:30"
        and prefs["work_end"] == "17:00"
    )
    for body in (
        {"timezone": "Mars/Olympus"},
        {"work_start": "25:00"},
        {"work_start": "18:00"},  # after work_end
        {"disabled_agents": ["no-such-agent"]},
        {"tone": None},
        {"colour": "red"},
    ):
        response = eve.http.patch("/profile/preferences", json=body)
        assert response.status_code == 422, (body, response.text)

    eve.ok(eve.http.put("/profile/contexts/on vacation", json={"description": "away"}))
    eve.ok(eve.http.put("/profile/contexts/at work", json={}))
    active = eve.ok(eve.http.put("/profile/active-context", json={"name": "on vacation"}))
    assert active["active_context"] == "on vacation"
    assert [c["name"] for c in active["contexts"] if c["active"]] == ["on vacation"]
    switched = eve.ok(eve.http.put("/profile/active-context", json={"name": "at work"}))
    assert [c["name"] for c in switched["contexts"] if c["active"]] == ["at work"]
    assert eve.http.put("/profile/active-context", json={"name": "nowhere"}).status_code == 404
    eve.ok(eve.http.put("/profile/consents/tasks.read", json={"granted": True}))
    eve.ok(eve.http.put("/profile/active-context", json={"name": "on vacation"}))
    agents = {a["id"]: a for a in eve.ok(eve.http.get("/agents"))}
    assert agents["overdue-tasks"]["reason"] == "silenced by context 'on vacation'"
    assert agents["momentum"]["eligible"] is True

    unknown = eve.http.put("/profile/consents/tasks.delete", json={"granted": True})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_consent"
    for body in (
        {"kind": "todoist"},
        {"kind": "todoist", "token": "x", "path": "a.md"},
        {"kind": "markdown", "path": "../../etc/passwd"},
        {"kind": "ics", "path": "/etc/passwd"},
        {"kind": "caldav", "path": "x"},
    ):
        response = eve.http.post("/connectors", json=body)
        assert response.status_code == 422, (body, response.text)
    assert eve.http.post("/connectors/nope/sync").status_code == 404
    assert eve.http.delete("/profile/contexts/nowhere").status_code == 404


def test_cli_commands(world) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from hearth.cli.main import app as cli

    hearth, _, todoist = world
    key = new_user_key(hearth, "fay")

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["tips", *args, "--url", hearth.url, "--api-key", key])
        assert result.exit_code == 0, result.output
        return result.output

    assert "tasks.read: granted" in run("profile", "consent", "tasks.read", "grant")
    assert "timezone: Europe/Berlin" in run("profile", "set", "--timezone", "Europe/Berlin")
    assert "connected todoist" in run("connect", "todoist", "--token", todoist.state.token)
    synced = run("sync")
    assert "ok" in synced and "task.open" in synced and todoist.state.token not in synced
    out = run("next")
    assert "agents overdue-tasks" in out and "fallback: off-format: echoes the prompt" in out
    tip_id = re.search(r"id ([0-9a-f]{32})", out).group(1)  # type: ignore[union-attr]
    assert "snooze" in run("feedback", tip_id, "snooze", "--until", "2h")
    assert "no: needs consent history.read" in run("agents")
    assert "active context: none" in run("profile", "activate", "none")
    bad = CliRunner().invoke(
        cli, ["tips", "feedback", tip_id, "snooze", "--url", hearth.url, "--api-key", key]
    )
    assert bad.exit_code == 1 and "snooze needs until" in bad.output
