"""Shared fixtures. Storage tests run on both SQLite and the real PostgreSQL on 127.0.0.1:5432."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import nats
import psycopg
import pytest

from hearth.platform.db import Database
from hearth.platform.migrate import upgrade
from tests.fake_openai import FakeOpenAI

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

POSTGRES_DSN = os.environ.get("HEARTH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("HEARTH_TEST_NATS", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("HEARTH_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the test database, dropped afterwards. Fails (never skips) if PostgreSQL is down."""
    name = f"hearth_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def postgres_url(schema: str) -> str:
    base = POSTGRES_DSN.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hearth.db'}"
    schema = request.getfixturevalue("postgres_schema")
    return postgres_url(schema)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated database on each backend."""
    upgrade(database_url)
    db = Database(database_url)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """An isolated subject/stream prefix; every stream created under it is deleted afterwards."""
    name = f"t{uuid.uuid4().hex[:10]}"
    nc = await nats.connect(NATS_URL, allow_reconnect=False, connect_timeout=2)  # fails if NATS is down
    try:
        yield name
    finally:
        js = nc.jetstream()
        # Twice, in case a request the bus sent just before stopping created a stream after the first pass.
        for _ in range(2):
            for info in await js.streams_info():
                if info.config.name and info.config.name.startswith(f"{name.upper()}_"):
                    await js.delete_stream(info.config.name)
            await asyncio.sleep(0.05)
        await nc.close()


@pytest.fixture
def upstreams() -> Iterator[list[FakeOpenAI]]:
    """Two fake OpenAI-compatible servers on loopback, answering as models up0 and up1."""
    servers = [FakeOpenAI(model=f"up{i}").start() for i in range(2)]
    yield servers
    for s in servers:
        s.stop()
