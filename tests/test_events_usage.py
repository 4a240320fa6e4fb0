"""The usage ledger: the gateway sums usage in memory and publishes InferenceUsage; the ledger folds it into
per-day rows exactly once, in-process and over NATS JetStream, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from typer.testing import CliRunner

from hearth.auth.service import AuthService
from hearth.cli.main import app as cli
from hearth.gateway.events import InferenceUsage
from hearth.gateway.telemetry import UsageMeter
from hearth.platform.db import Database
from hearth.usage.ledger import CONSUMER, UsageFilter, UsageLedger
from tests.events_helpers import NATS_URL, event_bus, redeliver
from tests.fake_openai import FakeOpenAI
from tests.harness import remote_config, run_hearth
from tests.helpers import wait_for_async, wait_until

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
DAY = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def usage(alias: str, *, user: str, key: str | None = "k1", requests: int = 1, **sums: int) -> InferenceUsage:
    return InferenceUsage(
        user_id=user,
        key_id=key,
        alias=alias,
        window_start=DAY,
        window_end=DAY + timedelta(seconds=2),
        requests=requests,
        failures=sums.get("failures", 0),
        prompt_tokens=sums.get("prompt", 0),
        completion_tokens=sums.get("completion", 0),
    )


def test_meter_sums_per_caller_and_alias_then_restarts() -> None:
    meter = UsageMeter()
    meter.add(("u1", "k1", "chat"), 7, 4)
    meter.add(("u1", "k1", "chat"), 3, 2)
    meter.add(("u1", "k1", "chat"), 0, 0, failed=True)
    meter.add(("u2", None, "embed"), 5, 0)
    first = {(e.user_id, e.key_id, e.alias): e for e in meter.drain()}
    assert set(first) == {("u1", "k1", "chat"), ("u2", None, "embed")}
    chat = first[("u1", "k1", "chat")]
    assert (chat.requests, chat.failures, chat.prompt_tokens, chat.completion_tokens) == (3, 1, 10, 6)
    assert chat.window_start < chat.window_end
    assert meter.drain() == []  # nothing used since: no event at all
    meter.add(("u1", "k1", "chat"), 1, 1)
    (later,) = meter.drain()
    assert later.window_start >= chat.window_end and later.requests == 1  # windows never overlap


@pytest.mark.parametrize("transport", ["in-process", "nats"])
async def test_ledger_sums_per_day_and_counts_a_redelivered_event_once(
    database: Database, prefix: str, transport: str
) -> None:
    auth = AuthService(database)
    alice = (await auth.create_user(username="alice")).id
    ledger = UsageLedger(db=database, users=auth)

    async def totals(where: UsageFilter) -> list[tuple]:
        lines = await ledger.report(where=where)
        return [(x.username, x.key_id, x.alias, x.requests, x.failures, x.prompt_tokens, x.completion_tokens)
                for x in lines]  # fmt: skip

    async with event_bus(database, transport, prefix) as bus:
        bus.subscribe(CONSUMER, ledger.record, contexts={"usage"}, types={"InferenceUsage"}, idempotent=True)
        await bus.start()
        first = usage("chat", user=alice, requests=2, prompt=14, completion=8)
        await bus.publish(first)
        await bus.publish(usage("chat", user=alice, requests=1, failures=1))
        await bus.publish(usage("embed", user="system", key=None, requests=3, prompt=30))

        async def settled() -> bool:
            return len(await ledger.report(where=UsageFilter())) == 2 and bus.counters.consumed == 3

        await wait_for_async(settled, what="three usage events in the ledger")
        await redeliver(bus, database, first.id)
        marker = usage("marker", user=alice)  # delivered after the redelivered event, in stream order
        await bus.publish(marker)

        async def marker_counted() -> bool:
            return bool(await ledger.report(where=UsageFilter(alias="marker")))

        await wait_for_async(marker_counted, what="the marker after the redelivery")

    assert await totals(UsageFilter(alias="chat")) == [("alice", "k1", "chat", 3, 1, 14, 8)]  # once
    assert await totals(UsageFilter(user="alice", since=DAY.date(), until=DAY.date(), alias="chat")) == [
        ("alice", "k1", "chat", 3, 1, 14, 8)
    ]
    assert await totals(UsageFilter(key_id="k1", alias="embed")) == []
    assert await totals(UsageFilter(alias="embed")) == [(None, None, "embed", 3, 0, 30, 0)]  # "system"
    assert await totals(UsageFilter(since=DAY.date() + timedelta(days=1))) == []


def test_usage_on_nats_over_http_and_cli(tmp_path, database_url: str, prefix: str) -> None:
    upstream = FakeOpenAI().start()
    try:
        # Default settings (per-request gateway events off): the ledger fills anyway.
        with run_hearth(
            tmp_path, remote_config((upstream.url, {})), database_url=database_url,
            nats_url=NATS_URL, nats_prefix=prefix,
        ) as hearth:  # fmt: skip
            _exercise_usage(hearth, upstream)
    finally:
        upstream.stop()


def test_usage_in_process_over_http_and_cli(tmp_path, database_url: str) -> None:
    upstream = FakeOpenAI().start()
    try:
        with run_hearth(tmp_path, remote_config((upstream.url, {})), database_url=database_url) as hearth:
            _exercise_usage(hearth, upstream)
    finally:
        upstream.stop()


def _exercise_usage(hearth, upstream: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    admin = hearth.headers()
    assert (
        httpx.post(f"{hearth.url}/api/admin/users", json={"username": "bob"}, headers=admin).status_code
        == 201
    )
    key = httpx.post(f"{hearth.url}/api/admin/keys", json={"user": "bob"}, headers=admin).json()
    bob = hearth.headers(key["key"])
    for _ in range(3):
        assert httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=bob).status_code == 200
    upstream.behaviour.mode = "error400"
    assert httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=bob).status_code == 400

    def bobs_usage() -> list[dict] | None:
        r = httpx.get(f"{hearth.url}/api/admin/usage", params={"user": "bob"}, headers=admin)
        assert r.status_code == 200, r.text
        lines = r.json()["data"]
        return lines if sum(x["requests"] for x in lines) == 4 else None

    (line,) = wait_until(bobs_usage, within=20, what="bob's four calls in the ledger")
    today = datetime.now(UTC).date().isoformat()
    assert line == {
        "day": today, "user_id": key["user_id"], "username": "bob", "key_id": key["id"], "alias": "chat",
        "requests": 4, "failures": 1, "prompt_tokens": 21, "completion_tokens": 12,
    }  # fmt: skip

    def get(**params: str) -> httpx.Response:
        return httpx.get(f"{hearth.url}/api/admin/usage", params=params, headers=admin)

    report = get(day=today, key_id=key["id"], alias="chat").json()
    assert report["data"] == [line] and report["totals"]["requests"] == 4
    zero = {"requests": 0, "failures": 0, "prompt_tokens": 0, "completion_tokens": 0}
    assert get(alias="nope").json() == {"data": [], "totals": zero}
    assert get(since=(date.today() + timedelta(days=1)).isoformat(), user="bob").json()["data"] == []

    bad = get(day=today, since=today)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "day"
    bad = get(since="2026-02-02", until="2026-02-01")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_filter"
    bad = get(day="yesterday")
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "query.day"
    bad = get(user="nobody")
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "user_not_found"
    forbidden = httpx.get(f"{hearth.url}/api/admin/usage", headers=bob)
    assert forbidden.status_code == 403

    result = CliRunner().invoke(
        cli, ["usage", "--user", "bob", "--day", today, "--url", hearth.url, "--api-key", hearth.admin_key]
    )
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "bob" in line)
    assert [c.strip() for c in row.split("│")[1:-1]] == [
        today,
        "bob",
        key["id"],
        "chat",
        "4",
        "1",
        "21",
        "12",
    ]
    result = CliRunner().invoke(
        cli, ["usage", "--since", "2026-02-02", "--until", "2026-02-01", "--url", hearth.url,
              "--api-key", hearth.admin_key],
    )  # fmt: skip
    assert result.exit_code == 1 and "since (2026-02-02) is after until (2026-02-01)" in result.output


def test_usage_of_the_last_window_survives_a_restart(tmp_path) -> None:
    upstream = FakeOpenAI().start()
    try:
        config = remote_config((upstream.url, {}))
        with run_hearth(tmp_path, config) as hearth:
            for _ in range(2):
                assert httpx.post(
                    f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers()
                ).is_success
        # Stopped well within the first 2 s window: its usage was published at shutdown, and the next
        # start delivers it to the ledger (which subscribes before the bus starts delivering).
        with run_hearth(tmp_path, config) as hearth:

            def counted() -> dict | None:
                r = httpx.get(
                    f"{hearth.url}/api/admin/usage", params={"user": "admin"}, headers=hearth.headers()
                )
                return r.json()["totals"] if r.json()["totals"]["requests"] else None

            totals = wait_until(counted, within=20, what="the first run's usage")
            assert totals == {"requests": 2, "failures": 0, "prompt_tokens": 14, "completion_tokens": 8}
    finally:
        upstream.stop()
