"""The whole server on its scale-out adapters: PostgreSQL for storage, NATS JetStream for events."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import psycopg

from tests.conftest import NATS_URL, POSTGRES_DSN
from tests.fake_openai import FakeOpenAI
from tests.harness import remote_config, run_hearth
from tests.helpers import read_stream

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def test_server_on_postgres(tmp_path, postgres_schema):
    upstream = FakeOpenAI().start()
    url = (
        POSTGRES_DSN.replace("postgresql://", "postgresql+psycopg://")
        + f"?options=-csearch_path%3D{postgres_schema}"
    )
    try:
        with run_hearth(tmp_path, remote_config((upstream.url, {})), database_url=url) as hearth:
            r = httpx.post(
                f"{hearth.url}/api/admin/users", json={"username": "pg-user"}, headers=hearth.headers()
            )
            assert r.status_code == 201, r.text
            key = httpx.post(
                f"{hearth.url}/api/admin/keys", json={"user": "pg-user"}, headers=hearth.headers()
            )
            assert key.status_code == 201, key.text
            r = httpx.post(
                f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers(key.json()["key"])
            )
            assert r.status_code == 200
    finally:
        upstream.stop()
    with psycopg.connect(POSTGRES_DSN) as conn:
        users = conn.execute(f'SELECT username FROM "{postgres_schema}".users ORDER BY username').fetchall()
        hashes = conn.execute(f'SELECT key_hash FROM "{postgres_schema}".api_keys').fetchall()
    assert users == [("admin",), ("pg-user",)]
    assert all(len(h) == 64 and not h.startswith("hk-") for (h,) in hashes)  # digests, never keys


def test_gateway_events_reach_nats_jetstream(tmp_path, prefix):
    upstream = FakeOpenAI().start()
    try:
        config = remote_config((upstream.url, {}))
        with run_hearth(
            tmp_path, config, nats_url=NATS_URL, nats_prefix=prefix, gateway_events=True
        ) as hearth:
            for _ in range(3):
                r = httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers())
                assert r.status_code == 200, r.text
            upstream.behaviour.mode = "error400"  # the upstream rejects the request: a failure event
            r = httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers())
            assert r.status_code == 400
            messages = asyncio.run(read_stream(NATS_URL, f"{prefix.upper()}_INFERENCE", expect=4))
    finally:
        upstream.stop()
    kinds = sorted(m.subject.rsplit(".", 1)[1] for m in messages)
    assert kinds == ["InferenceCompleted"] * 3 + ["InferenceFailed"]
    completed = [orjson.loads(m.data) for m in messages if m.subject.endswith("InferenceCompleted")]
    assert all(e["alias"] == "chat" and e["status"] == 200 and e["completion_tokens"] == 4 for e in completed)
    assert len({m.headers["Nats-Msg-Id"] for m in messages}) == 4
