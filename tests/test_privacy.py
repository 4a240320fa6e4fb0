"""Export and erasure of a user across every context, through the real app in process (HTTP over ASGI), on
SQLite with SQL sessions and LanceDB, and on PostgreSQL with Redis sessions and Qdrant (local mode).

A user gets data in every context (a conversation through a fake upstream, preferences, a session, a
shared and an indexed document with an uploaded file, a voice turn with its audio, usage, a web session,
audit entries); the export holds the marker text and the files and no secret; after the erasure, every
table of the database (reflected, not listed by hand), the vector store, Redis and every file of the data
directory are scanned for the user's id, name and marker, and nothing is found. Another user's data stays.
"""

from __future__ import annotations

import asyncio
import io
import uuid
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import redis.asyncio as aioredis
import yaml
from sqlalchemy import MetaData, func, select, text

from hearth.app import create_app
from hearth.auth.models import ApiKey, User
from hearth.config import Settings
from hearth.events.models import OutboxEvent
from hearth.gateway.audio import DecodedAudio, pcm_to_wav
from hearth.gateway.service import Caller
from hearth.platform.db import new_id
from hearth.platform.personal_data import PersonalDataRegistry
from hearth.rag.ports import SERVICE as RAG
from hearth.usage.models import UsageDay
from hearth.voice.pipeline import TurnOptions, TurnResult
from hearth.voice.ports import SERVICE as VOICE
from hearth.voice.service import TurnInput
from tests.conftest import REDIS_URL, postgres_url
from tests.fake_openai import FakeOpenAI
from tests.harness import rag_config
from tests.helpers import wait_for_async

MARKER = "zebraquokka7731"  # in everything the user writes: found anywhere after erasure is a leak
RATE = 22_050


@dataclass
class Hearth:
    app: Any
    http: httpx.AsyncClient
    data_dir: Path
    settings: Settings
    redis_prefix: str | None

    @property
    def platform(self) -> Any:
        return self.app.state.platform

    async def user(self, name: str, *, role: str = "user") -> tuple[str, dict[str, str], str]:
        user = await self.platform.auth.create_user(username=name, role=role)
        _, token = await self.platform.auth.create_key(user_id=user.id, name="k")
        return user.id, {"Authorization": f"Bearer {token}"}, token


@asynccontextmanager
async def running(tmp_path: Path, backend: str, upstream: FakeOpenAI) -> AsyncIterator[Hearth]:
    data_dir = tmp_path / "data"
    config = tmp_path / "hearth.yaml"
    config.write_text(yaml.safe_dump(rag_config(upstream.url)))
    options: dict[str, Any] = {}
    prefix = None
    if backend == "postgres":
        options["database_url"] = postgres_url(_schema(tmp_path))
        prefix = f"hearth-t{uuid.uuid4().hex[:10]}"
        options |= {"redis_url": REDIS_URL, "redis_prefix": prefix, "qdrant_path": data_dir / "qdrant"}
    settings = Settings(
        data_dir=data_dir, config_file=config, voice_warmup=False, retention_sweep_seconds=0, **options
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hearth", timeout=60) as http:
            yield Hearth(app, http, data_dir, settings, prefix)


SCHEMAS: list[str] = []


def _schema(tmp_path: Path) -> str:
    import psycopg

    from tests.conftest import POSTGRES_DSN

    name = f"hearth_p_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:  # fails (never skips) when it is down
        conn.execute(f'CREATE SCHEMA "{name}"')
    SCHEMAS.append(name)
    return name


@pytest.fixture
def upstream() -> Any:
    server = FakeOpenAI(model="m0").start()
    yield server
    server.stop()
    import psycopg

    from tests.conftest import POSTGRES_DSN

    while SCHEMAS:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMAS.pop()}" CASCADE')


async def voice_turn(hearth: Hearth, user_id: str, said: str) -> str:
    """A finished voice turn stored the way the pipeline stores one (rows, audio files, events)."""
    voice = hearth.platform.ports.require(VOICE)
    tone = (np.sin(np.arange(RATE // 4) * 2 * np.pi * 220 / RATE) * 8000).astype("<i2").tobytes()
    caller = Caller(user_id=user_id, request_id=new_id())
    result = TurnResult(transcription=said, response_text=f"About {MARKER}.", sentences=["Ok."], pcm=[tone])
    result.sample_rate = RATE
    result.stages_ms.update({"transcription": 1.0, "llm": 2.0, "tts": 1.0, "total": 4.0})
    options = TurnOptions(
        stt_model="stt", tts_model="tts", chat_model="chat", system_prompt="", max_reply_tokens=9
    )
    out = await voice.finish(
        caller=caller,
        turn=TurnInput(audio=pcm_to_wav(tone, RATE)),
        audio=DecodedAudio("wav", np.zeros(4000, np.float32), 0.25),
        options=options,
        result=result,
        session_id=None,
    )
    return out.request_id


async def fill(hearth: Hearth, name: str, headers: dict[str, str], other: str) -> dict[str, Any]:
    """Data in every context for one user; returns what the checks need."""
    http = hearth.http
    turn = {"content": f"Tell me about {MARKER} please", "stream": False}
    r = await http.post("/api/conversations", json=turn, headers=headers)
    assert r.status_code == 201, r.text
    r = await http.put("/api/me/preferences", json={"collection": f"notes-{MARKER}"}, headers=headers)
    assert r.status_code == 200, r.text
    assert (await http.post("/api/sessions", json={"kind": "chat"}, headers=headers)).status_code == 201
    r = await http.post("/api/rag/collections", json={"name": f"c-{name}"}, headers=headers)
    assert r.status_code == 201, r.text
    collection = r.json()["id"]
    text_doc = {"text": f"The {MARKER} lives in the hills and eats ferns.", "source": "animal.txt"}
    r = await http.post(f"/api/rag/collections/{collection}/documents", json=text_doc, headers=headers)
    assert r.status_code == 202, r.text
    upload = f"My private diary mentions {MARKER} twice: {MARKER}.".encode()
    r = await http.post(
        f"/api/rag/collections/{collection}/documents", files={"file": ("diary.txt", upload)}, headers=headers
    )
    assert r.status_code == 202, r.text
    r = await http.post(
        f"/api/rag/collections/{collection}/shares", json={"username": other}, headers=headers
    )
    assert r.status_code == 200, r.text
    rag = hearth.platform.ports.require(RAG)
    await rag.wait_idle()

    async def indexed() -> bool:
        docs = (await http.get(f"/api/rag/collections/{collection}/documents", headers=headers)).json()
        return len(docs) == 2 and all(d["status"] == "indexed" for d in docs)

    await wait_for_async(indexed, 60, "documents indexed")
    body = {"collection": collection, "query": f"{MARKER} ferns", "generate": False}
    hits = (await http.post("/api/rag/query", json=body, headers=headers)).json()["sources"]
    assert any(MARKER in h["text"] for h in hits)
    note = {"title": f"Reminder {MARKER}", "body": f"Feed the {MARKER}."}
    r = await http.post("/api/notify/test", json=note, headers=headers)
    assert r.status_code == 200 and r.json()["deliveries"][0]["status"] == "sent", r.text
    r = await http.put("/api/notify/preferences", json={"time_zone": "Europe/Oslo"}, headers=headers)
    assert r.status_code == 200, r.text
    tips_context = {"description": f"at the {MARKER} farm"}
    r = await http.put("/api/tips/profile/contexts/farm", json=tips_context, headers=headers)
    assert r.status_code == 200, r.text
    r = await http.put("/api/tips/profile/consents/tasks.read", json={"granted": True}, headers=headers)
    assert r.status_code == 200, r.text
    question = {"query": f"What do you know about {MARKER}?", "route": "direct", "max_tokens": 16}
    r = await http.post("/api/agents/router", json=question, headers=headers)
    assert r.status_code == 201, r.text
    request_id = await voice_turn(hearth, (await hearth.platform.auth.user_id_of(name)), f"I said {MARKER}")
    return {"collection": collection, "upload": upload, "voice_request": request_id}


async def signed_in(hearth: Hearth, token: str) -> Any:
    return await hearth.platform.auth.web.sign_in_key(key=token)


async def usage_rows(hearth: Hearth, user_id: str) -> int:
    async with hearth.platform.db.sessions() as s:
        return int(
            await s.scalar(select(func.count()).select_from(UsageDay).where(UsageDay.user_id == user_id))
        )


async def leaks_in_database(hearth: Hearth, needles: list[str]) -> list[str]:
    """Every table of the schema, reflected: each row's values as text, searched for the needles."""
    found = []
    async with hearth.platform.db.engine.connect() as conn:
        meta = MetaData()
        await conn.run_sync(lambda c: meta.reflect(c))
        assert {
            "users",
            "chat_messages",
            "rag_documents",
            "voice_requests",
            "usage_daily",
            "audit_log",
        } <= set(meta.tables)
        for table in meta.sorted_tables:
            for row in (await conn.execute(select(table))).all():
                blob = " ".join(_text(v) for v in row)
                found += [f"{table.name}: {n}" for n in needles if n in blob]
    return found


def _text(value: Any) -> str:
    if isinstance(value, bytes | memoryview):  # outbox payloads: JSON or MessagePack, strings as UTF-8
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def leaks_in_files(root: Path, needles: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        found += [f"path {path}: {n}" for n in needles if n in str(path.relative_to(root))]
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n}" for n in needles if n.encode() in data]
    return found


def leaks_in_vectors(hearth: Hearth, needles: list[str]) -> list[str]:
    store = hearth.platform.ports.require(RAG).store
    found = []
    for collection in store.collections():
        for row in store.rows(collection):
            blob = orjson.dumps(row, default=str).decode()
            found += [f"vector store {collection}: {n}" for n in needles if n in blob]
    return found


async def leaks_in_redis(hearth: Hearth, needles: list[str]) -> list[str]:
    if hearth.redis_prefix is None:
        return []
    client = aioredis.Redis.from_url(REDIS_URL)
    found = []
    try:
        async for key in client.scan_iter(match=f"{hearth.redis_prefix}:*"):
            kind = (await client.type(key)).decode()
            if kind == "hash":
                value = str(await client.hgetall(key))
            elif kind == "zset":
                value = str(await client.zrange(key, 0, -1))
            else:
                value = str(await client.get(key))
            found += [f"redis {key!r}: {n}" for n in needles if n in key.decode() + value]
        return found
    finally:
        await client.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


async def test_export_then_erase_leaves_nothing_of_the_user(
    tmp_path: Path, upstream: FakeOpenAI, backend: str
) -> None:
    name = f"marta_{uuid.uuid4().hex[:8]}"
    async with running(tmp_path, backend, upstream) as hearth:
        http = hearth.http
        admin_id, admin, _ = await hearth.user(f"root_{uuid.uuid4().hex[:6]}", role="admin")
        user_id, marta, token = await hearth.user(name)
        olga_id, olga, _ = await hearth.user("olga")
        # Olga's data, some of it shared with marta: all of it must survive marta's erasure.
        r = await http.post("/api/rag/collections", json={"name": "olga-notes"}, headers=olga)
        olga_collection = r.json()["id"]
        await http.post(
            f"/api/rag/collections/{olga_collection}/documents",
            json={"text": "Olga keeps bees near the river.", "source": "bees.txt"},
            headers=olga,
        )
        await http.post(
            f"/api/rag/collections/{olga_collection}/shares", json={"username": name}, headers=olga
        )
        r = await http.post(
            "/api/conversations", json={"content": "Olga asks about bees", "stream": False}, headers=olga
        )
        olga_conversation = r.json()["conversation_id"]

        made = await fill(hearth, name, marta, "olga")
        assert await signed_in(hearth, token) is not None
        await wait_for_async(lambda: _has_usage(hearth, user_id), 30, "usage ledger row")

        # -- export ---------------------------------------------------------------------------------
        r = await http.get("/api/me/export", headers=marta)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(r.content))
        names = set(archive.namelist())
        assert {"manifest.json", "auth.json", "chat.json", "rag.json", "voice.json", "usage.json"} <= names
        assert {"audit.json", "events.json", "notify.json", "tips.json"} <= names
        agents = orjson.loads(archive.read("agents.json"))
        assert [r["query"] for r in agents["runs"]] == [f"What do you know about {MARKER}?"]
        tips = orjson.loads(archive.read("tips.json"))
        assert MARKER in orjson.dumps(tips).decode() and any(
            c["key"] == "tasks.read" for c in tips["tips_consents"]
        )
        notify = orjson.loads(archive.read("notify.json"))
        assert notify["inbox"][0]["title"] == f"Reminder {MARKER}" and notify["preferences"][0]["time_zone"]
        manifest = orjson.loads(archive.read("manifest.json"))
        assert manifest["user_id"] == user_id and manifest["username"] == name
        chat = orjson.loads(archive.read("chat.json"))
        assert any(MARKER in m["content"] for m in chat["messages"])
        assert chat["preferences"][0]["collection"] == f"notes-{MARKER}" and chat["sessions"]
        rag_rows = orjson.loads(archive.read("rag.json"))
        assert {d["source"] for d in rag_rows["documents"]} == {"animal.txt", "diary.txt"}
        assert {s["collection_id"] for s in rag_rows["shares"]} == {made["collection"], olga_collection}
        # Indexed uploads are removed by the worker; their text is in the archive as indexed.
        assert made["upload"].decode() in " ".join(c["text"] for c in rag_rows["chunks"])
        voice = orjson.loads(archive.read("voice.json"))
        assert voice["requests"][0]["transcription"] == f"I said {MARKER}"
        assert len([n for n in names if n.startswith("files/voice/audio/")]) == 2, names
        assert orjson.loads(archive.read("usage.json"))["usage_daily"][0]["requests"] >= 1
        auth = orjson.loads(archive.read("auth.json"))
        assert auth["user"][0]["username"] == name and len(auth["web_sessions"]) == 1
        assert any(
            e["action"] == "collection.shared" for e in orjson.loads(archive.read("audit.json"))["audit_log"]
        )
        # No secrets: not the key, nor any digest or hash, nor a session's CSRF token.
        async with hearth.platform.db.sessions() as s:
            key_hash = await s.scalar(select(ApiKey.key_hash).where(ApiKey.user_id == user_id))
            csrf = (await s.execute(text("SELECT csrf_token, id FROM web_sessions"))).all()
        everything = b"".join(archive.read(n) for n in names)
        for secret in [token, key_hash, *[c for row in csrf for c in row]]:
            assert secret.encode() not in everything
        assert b"password_hash" not in everything and b"key_hash" not in everything

        # -- erasure: confirmation, last admin ------------------------------------------------------
        r = await http.request("DELETE", "/api/me", json={"confirm": "someone-else"}, headers=marta)
        assert r.status_code == 422 and r.json()["error"]["code"] == "confirmation_mismatch"
        r = await http.post(f"/api/admin/users/{admin_id}/erase", json={"confirm": "x"}, headers=admin)
        assert r.status_code == 422
        root_name = (await hearth.platform.auth.usernames([admin_id]))[admin_id]
        r = await http.request("DELETE", "/api/me", json={"confirm": root_name}, headers=admin)
        assert r.status_code == 409 and r.json()["error"]["code"] == "last_admin", r.text

        r = await http.request("DELETE", "/api/me", json={"confirm": name}, headers=marta)
        assert r.status_code == 200, r.text
        erased = r.json()
        assert erased["contexts"][-2:] == ["events", "auth"] and {"chat", "rag", "voice", "usage"} <= set(
            erased["contexts"]
        )
        assert (await http.get("/api/me/export", headers=marta)).status_code == 401
        await asyncio.sleep(2.5)  # a usage window the gateway summed in memory arrives, and is dropped

        async def audited() -> bool:
            async with hearth.platform.db.sessions() as s:
                return bool(
                    await s.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'user.erased'"))
                )

        await wait_for_async(audited, 15, "UserErased in the audit log")

        needles = [user_id, name, MARKER, made["voice_request"], made["collection"]]
        leaks = await leaks_in_database(hearth, needles)
        leaks += leaks_in_files(hearth.data_dir, needles)
        leaks += leaks_in_vectors(hearth, needles)
        leaks += await leaks_in_redis(hearth, needles)
        assert leaks == [], "\n".join(leaks)
        # The audit trail keeps the actions, under the pseudonym.
        async with hearth.platform.db.sessions() as s:
            targets = set((await s.scalars(text("SELECT target FROM audit_log"))).all())
            assert erased["pseudonym"] in targets
            assert await s.get(User, olga_id) is not None

        # Olga lost nothing: her collection, its share list without marta, her conversation.
        r = await http.get(f"/api/rag/collections/{olga_collection}", headers=olga)
        assert r.status_code == 200 and r.json()["shared_with"] == []
        body = {"collection": olga_collection, "query": "bees river", "generate": False}
        await wait_for_async(lambda: _answers(http, body, olga), 60, "olga's document indexed")
        assert (await http.get(f"/api/conversations/{olga_conversation}", headers=olga)).status_code == 200
        # Erasing again: the user is gone (404 for the admin route).
        r = await http.post(f"/api/admin/users/{user_id}/erase", json={"confirm": name}, headers=admin)
        assert r.status_code == 404


async def _has_usage(hearth: Hearth, user_id: str) -> bool:
    return await usage_rows(hearth, user_id) > 0


async def _answers(http: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str]) -> bool:
    r = await http.post("/api/rag/query", json=body, headers=headers)
    return r.status_code == 200 and any("bees" in s["text"] for s in r.json()["sources"])


async def test_admin_exports_and_erases_another_user(tmp_path: Path, upstream: FakeOpenAI) -> None:
    async with running(tmp_path, "sqlite", upstream) as hearth:
        http = hearth.http
        _, admin, _ = await hearth.user("boss", role="admin")
        user_id, nina, _ = await hearth.user("nina")
        r = await http.post(
            "/api/conversations", json={"content": f"nina {MARKER}", "stream": False}, headers=nina
        )
        assert r.status_code == 201
        assert (await http.get(f"/api/admin/users/{user_id}/export", headers=nina)).status_code == 403
        assert (await http.get("/api/admin/users/nobody/export", headers=admin)).status_code == 404
        r = await http.get(f"/api/admin/users/{user_id}/export", headers=admin)
        archive = zipfile.ZipFile(io.BytesIO(r.content))
        assert MARKER in archive.read("chat.json").decode()
        r = await http.post(f"/api/admin/users/{user_id}/erase", json={"confirm": "nina"}, headers=admin)
        assert r.status_code == 200, r.text
        assert (await http.get("/api/conversations", headers=nina)).status_code == 401

        async def audited() -> list[tuple[str, str]]:
            async with hearth.platform.db.sessions() as s:
                return list(
                    (
                        await s.execute(
                            text("SELECT actor, target FROM audit_log WHERE action = 'user.erased'")
                        )
                    ).all()
                )

        await wait_for_async(audited, 15, "UserErased audited")
        assert (await audited()) == [("boss", r.json()["pseudonym"])]


async def test_registry_takes_any_holder_and_erases_in_order() -> None:
    """The shape another context (tips) plugs in with: two methods, named at registration; erasure runs
    the contexts in reverse order, then the platform's, then everything once more."""
    calls: list[str] = []

    class Holder:
        def __init__(self, name: str) -> None:
            self.name = name

        async def export_user(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
            return {"rows": [{"user": user_id, "from": self.name}]}

        async def erase_user(self, user_id: str) -> None:
            calls.append(self.name)

    registry = PersonalDataRegistry()
    registry.register(Holder("rag"), context="rag")
    registry.register(Holder("tips"), context="tips")
    registry.register(Holder("auth"), context="auth", last=True)
    with pytest.raises(ValueError):
        registry.register(Holder("tips"), context="tips")
    with pytest.raises(TypeError):
        registry.register(object())
    assert await registry.export("u1") == {
        name: {"rows": [{"user": "u1", "from": name}]} for name in ("rag", "tips", "auth")
    }
    assert await registry.files("u1") == []  # user_files is optional
    assert await registry.erase("u1") == ["tips", "rag", "auth"]
    assert calls == ["tips", "rag", "auth"] * 2


async def test_erasure_deletes_the_users_events_from_jetstream(database: Any, prefix: str) -> None:
    """With NATS relaying the outbox, the user's events leave the JetStream streams too; another user's
    stay, and so does an event in which the user only acted (its outbox copy names the pseudonym)."""
    from hearth.auth.events import UserCreated
    from hearth.auth.service import AuthService
    from hearth.chat.events import ConversationTitled
    from hearth.events.personal_data import OutboxPersonalData
    from tests.events_helpers import event_bus

    auth = AuthService(database)
    ivy = await auth.create_user(username="ivy")
    max_ = await auth.create_user(username="max")
    async with event_bus(database, "nats", prefix) as bus:
        bus.subscribe("sink", lambda event: None, contexts={"chat", "auth"})
        await bus.start()
        mine = ConversationTitled(conversation_id="c1", user_id=ivy.id, title=f"ivy {MARKER}", source="model")
        theirs = ConversationTitled(conversation_id="c2", user_id=max_.id, title="max's", source="model")
        acted = UserCreated(user_id="someone", username="someone", role="user", premium=False, actor="ivy")
        for event in (mine, theirs, acted):
            await bus.publish(event)
        relay = bus.relay
        assert relay is not None

        async def stream_ids() -> set[str]:
            found = set()
            for context in ("chat", "auth"):
                info = await relay.js.stream_info(relay.stream_name(context))
                for seq in range(info.state.first_seq, info.state.last_seq + 1):
                    try:
                        msg = await relay.js.get_msg(relay.stream_name(context), seq)
                    except Exception:
                        continue
                    found.add(msg.headers["Nats-Msg-Id"])
            return found

        async def relayed() -> bool:
            try:
                return {mine.id, theirs.id, acted.id} <= await stream_ids()
            except Exception:
                return False

        await wait_for_async(relayed, 20, "events in JetStream")
        await OutboxPersonalData(database, auth, relay).erase_user(ivy.id)
        assert await stream_ids() >= {theirs.id, acted.id} and mine.id not in await stream_ids()
        async with database.sessions() as s:
            rows = {r.id: r.payload for r in (await s.scalars(select(OutboxEvent))).all()}
        assert mine.id not in rows and theirs.id in rows
        assert b'"actor":"erased-' in rows[acted.id] and b'"ivy"' not in rows[acted.id]
    await auth.drain()
