"""Sessions: one behaviour, two stores — SQL (SQLite and PostgreSQL) and the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis.asyncio as redis
from sqlalchemy import select

from hearth.auth.service import AuthService
from hearth.chat.sessions import RedisSessionStore, Sessions, SessionStore, SqlSessionStore
from hearth.events.bus import EventBus
from hearth.events.models import OutboxEvent
from hearth.platform.db import Database
from hearth.platform.errors import HearthError
from hearth.platform.migrate import upgrade
from tests.conftest import REDIS_URL, postgres_url
from tests.harness import run_hearth

WEEK = timedelta(days=7)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Env:
    sessions: Sessions
    clock: Clock
    alice: str
    bob: str


@pytest.fixture(params=["sqlite", "postgres", "redis"])
async def env(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Env]:  # type: ignore[no-untyped-def]
    if request.param == "postgres":
        url = postgres_url(request.getfixturevalue("postgres_schema"))
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'hearth.db'}"
    upgrade(url)
    db = Database(url)
    auth = AuthService(db)
    alice = await auth.create_user(username="alice")
    bob = await auth.create_user(username="bob")
    clock = Clock()
    store: SessionStore
    prefix = f"hearth-test-{uuid.uuid4().hex[:10]}"
    if request.param == "redis":
        store = RedisSessionStore(REDIS_URL, prefix=prefix, max_age=WEEK)
    else:
        store = SqlSessionStore(db)
    try:
        yield Env(Sessions(store, max_age=WEEK, clock=clock), clock, alice.id, bob.id)
    finally:
        await store.close()
        if request.param == "redis":
            r = redis.Redis.from_url(REDIS_URL)
            keys = [k async for k in r.scan_iter(f"{prefix}:*")]
            if keys:
                await r.delete(*keys)
            await r.aclose()
        await db.close()


async def test_open_get_touch_list(env: Env) -> None:
    sessions, clock, alice = env.sessions, env.clock, env.alice
    chat = await sessions.open(user_id=alice, kind="chat", metadata={"client": "cli"})
    clock.now += timedelta(minutes=5)
    voice = await sessions.open(user_id=alice, kind="voice")
    got = await sessions.get(user_id=alice, session_id=chat.id)
    assert (got.kind, got.metadata, got.started_at, got.last_activity) == (
        "chat",
        {"client": "cli"},
        chat.started_at,
        chat.started_at,
    )
    clock.now += timedelta(hours=1)
    touched = await sessions.touch(user_id=alice, session_id=chat.id)
    assert touched.last_activity == clock.now and touched.started_at == chat.started_at
    assert sessions.expires_at(touched) == clock.now + WEEK
    assert [s.id for s in await sessions.list(user_id=alice)] == [chat.id, voice.id]  # most recent first


async def test_another_users_session_is_not_found(env: Env) -> None:
    sessions, alice, bob = env.sessions, env.alice, env.bob
    mine = await sessions.open(user_id=alice, kind="chat")
    for call in (sessions.get, sessions.touch):
        with pytest.raises(HearthError) as err:
            await call(user_id=bob, session_id=mine.id)
        assert err.value.status == 404
    assert await sessions.list(user_id=bob) == []
    with pytest.raises(HearthError) as err:
        await sessions.open(user_id=alice, kind="video")
    assert err.value.status == 400 and "chat, voice" in err.value.message


async def test_sessions_expire_after_seven_idle_days(env: Env) -> None:
    sessions, clock, alice = env.sessions, env.clock, env.alice
    idle = await sessions.open(user_id=alice, kind="chat")
    active = await sessions.open(user_id=alice, kind="voice")
    clock.now += timedelta(days=6)
    await sessions.touch(user_id=alice, session_id=active.id)
    clock.now += timedelta(days=1, seconds=1)  # idle: 7 days 1 s; active: 1 day 1 s
    with pytest.raises(HearthError) as err:
        await sessions.get(user_id=alice, session_id=idle.id)
    assert err.value.status == 404 and "expired" in err.value.message
    with pytest.raises(HearthError):
        await sessions.touch(user_id=alice, session_id=idle.id)  # an expired session cannot be revived
    assert [s.id for s in await sessions.list(user_id=alice)] == [active.id]
    # The retention sweep removes what is older than the cutoff and nothing younger.
    assert await sessions.sweep(clock.now - WEEK) == 1
    assert await sessions.sweep(clock.now - WEEK) == 0
    assert (await sessions.get(user_id=alice, session_id=active.id)).id == active.id


async def test_sql_store_publishes_session_created_with_the_row(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"
    upgrade(url)
    db = Database(url)
    try:
        user = await AuthService(db).create_user(username="carol")
        sessions = Sessions(SqlSessionStore(db, EventBus(db)), max_age=WEEK)
        opened = await sessions.open(user_id=user.id, kind="voice")
        async with db.sessions() as s:
            types = (await s.scalars(select(OutboxEvent.type).where(OutboxEvent.context == "chat"))).all()
        assert types == ["SessionCreated"]
        assert opened.kind == "voice"
    finally:
        await db.close()


def test_server_keeps_sessions_in_redis_when_configured(tmp_path) -> None:  # type: ignore[no-untyped-def]
    prefix = f"hearth-test-{uuid.uuid4().hex[:10]}"
    with run_hearth(
        tmp_path, {"include_defaults": False}, redis_url=REDIS_URL, redis_prefix=prefix
    ) as hearth:
        r = httpx.post(f"{hearth.url}/api/sessions", json={"kind": "voice"}, headers=hearth.headers())
        assert r.status_code == 201, r.text
        session_id = r.json()["id"]
        listed = httpx.get(f"{hearth.url}/api/sessions", headers=hearth.headers()).json()
        assert [s["id"] for s in listed] == [session_id]

    async def in_redis() -> tuple[dict, int]:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            data = await client.hgetall(f"{prefix}:session:{session_id}")
            ttl = await client.ttl(f"{prefix}:session:{session_id}")
            keys = [k async for k in client.scan_iter(f"{prefix}:*")]
            await client.delete(*keys)
            return data, ttl
        finally:
            await client.aclose()

    data, ttl = asyncio.run(in_redis())
    assert data[b"kind"] == b"voice" and 7 * 86400 - 60 < ttl <= 7 * 86400
