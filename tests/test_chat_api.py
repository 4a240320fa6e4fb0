"""The chat API over HTTP against a real server and a fast fake upstream, on SQLite and PostgreSQL:
streamed turns stored whole or interrupted, titles, preferences, ownership, immutability, bad input."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from sqlalchemy import select

from hearth.auth.service import AuthService
from hearth.chat.titles import fallback_title
from hearth.events.models import OutboxEvent
from hearth.platform.db import Database
from tests.conftest import POSTGRES_DSN, postgres_url
from tests.fake_openai import FakeOpenAI
from tests.harness import remote_config, run_hearth
from tests.helpers import wait_until


class DroppingUpstream(FakeOpenAI):
    """Streams two pieces of a reply, then the connection breaks."""

    async def _stream(self, transport: asyncio.Transport, body: dict) -> None:
        transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        for piece in ("", "half ", "a reply"):
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m"}
            chunk["choices"] = [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]
            frame = b"data: " + orjson.dumps(chunk) + b"\n\n"
            transport.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            await asyncio.sleep(0.02)
        transport.abort()


class Server:
    def __init__(self, hearth: Any, upstream: FakeOpenAI, other_key: str) -> None:
        self.hearth = hearth
        self.upstream = upstream
        self.url = hearth.url
        self.other_key = other_key

    def headers(self, key: str | None = None) -> dict[str, str]:
        return self.hearth.headers(key)

    def post(self, path: str, body: Any, key: str | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers=self.headers(key), timeout=30)

    def get(self, path: str, key: str | None = None, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers=self.headers(key), params=params, timeout=30)

    def turn(self, path: str, body: dict[str, Any], key: str | None = None) -> list[dict[str, Any]]:
        """POST a message and read the whole SSE reply as a list of events."""
        events = []
        created = 201 if path == "/api/conversations" else 200  # a new conversation, or a message added
        with httpx.stream(
            "POST", f"{self.url}{path}", json=body, headers=self.headers(key), timeout=30
        ) as response:
            assert response.status_code == created, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(orjson.loads(line[6:]))
        return events

    def events_of(self, conversation_id: str) -> list[str]:
        async def read() -> list[str]:
            db = Database(self.hearth.settings.resolved_database_url)
            try:
                async with db.sessions() as s:
                    rows = await s.scalars(
                        select(OutboxEvent).where(OutboxEvent.context == "chat").order_by(OutboxEvent.seq)
                    )
                    return [r.type for r in rows if conversation_id.encode() in r.payload]
            finally:
                await db.close()

        return asyncio.run(read())


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory):  # type: ignore[no-untyped-def]
    upstream = FakeOpenAI().start()
    upstream.behaviour.stream_chunks = 3
    dropping = DroppingUpstream().start()
    config = remote_config((upstream.url, {}))
    config["backends"]["flaky"] = {"type": "openai", "base_url": dropping.url}
    config["aliases"]["flaky"] = {"kind": "chat", "deployments": [{"backend": "flaky", "model": "m"}]}
    # A second alias on the same upstream, to see a preference or a request pick the model.
    config["aliases"]["fast"] = {"kind": "chat", "deployments": [{"backend": "up0", "model": "m-fast"}]}
    config["backends"]["down"] = {"type": "openai", "base_url": "http://127.0.0.1:9/v1"}
    config["aliases"]["broken"] = {
        "kind": "chat",
        "deployments": [{"backend": "down", "model": "x", "max_retries": 0, "timeout": 5}],
    }
    settings: dict[str, Any] = {"chat_max_content_chars": 2000, "chat_history_chars": 3000}
    schema = None
    if request.param == "postgres":
        schema = f"hearth_t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        settings["database_url"] = postgres_url(schema)
    try:
        with run_hearth(tmp_path_factory.mktemp("chat"), config, **settings) as hearth:

            async def other_user() -> str:
                db = Database(hearth.settings.resolved_database_url)
                try:
                    auth = AuthService(db)
                    await auth.create_user(username="mallory")
                    _, token = await auth.create_key(username="mallory")
                    return token
                finally:
                    await db.close()

            yield Server(hearth, upstream, asyncio.run(other_user()))
    finally:
        upstream.stop()
        dropping.stop()
        if schema:
            with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def test_first_message_streams_stores_both_and_titles_the_conversation(server: Server) -> None:
    events = server.turn("/api/conversations", {"content": "How do I bake bread at home?"})
    assert _types(events) == ["start", "delta", "delta", "delta", "message", "title", "done"]
    cid = events[0]["conversation_id"]
    assert "".join(e["content"] for e in events if e["type"] == "delta") == "tok0 tok1 tok2 "
    assert events[5]["title"] == "Hello from upstream"  # the fake's non-streamed reply, tidied

    detail = server.get(f"/api/conversations/{cid}").json()
    assert detail["title"] == "Hello from upstream" and detail["message_count"] == 2
    user, assistant = detail["messages"]
    assert (user["role"], user["content"], user["status"]) == (
        "user",
        "How do I bake bread at home?",
        "complete",
    )
    assert (assistant["role"], assistant["content"], assistant["status"]) == (
        "assistant",
        "tok0 tok1 tok2 ",
        "complete",
    )
    meta = assistant["metadata"]
    assert meta["model_used"] == "chat" and meta["deployment"] == "up0/m0"
    assert (meta["prompt_tokens"], meta["completion_tokens"], meta["tokens_used"]) == (7, 3, 10)
    assert meta["latency_ms"] > 0 and meta["ttft_ms"] <= meta["latency_ms"] and meta["rag_sources"] == []
    assert user["created_at"] <= assistant["created_at"]
    assert server.events_of(cid) == [
        "ConversationStarted",
        "MessageReceived",
        "MessageStored",
        "ResponseGenerated",
        "MessageStored",
        "ConversationTitled",
    ]


def test_an_offset_past_the_database_integer_is_a_422(server: Server) -> None:
    """Issue 20, row 4: SQLite overflowed on it (a 500)."""
    r = server.get("/api/conversations", offset=2**63)
    assert r.status_code == 422 and r.json()["error"]["param"] == "query.offset", r.text
    assert server.get("/api/conversations", offset=2**63 - 1).json() == []


def test_follow_up_sends_the_history_and_keeps_the_title(server: Server) -> None:
    cid = server.turn("/api/conversations", {"content": "Remember the number 42."})[0]["conversation_id"]
    events = server.turn(f"/api/conversations/{cid}/messages", {"content": "Which number?", "max_tokens": 9})
    assert "title" not in _types(events) and _types(events)[-1] == "done"
    sent = server.upstream.stats.bodies[-1]
    assert sent["stream"] is True and sent["max_tokens"] == 9
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("user", "Remember the number 42."),
        ("assistant", "tok0 tok1 tok2 "),
        ("user", "Which number?"),
    ]
    messages = server.get(f"/api/conversations/{cid}/messages").json()
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert server.get(f"/api/conversations/{cid}").json()["title"] == "Hello from upstream"


def test_history_is_trimmed_to_fit_the_budget(server: Server) -> None:
    first, second = "a" * 1900, "b" * 1900
    cid = server.turn("/api/conversations", {"content": first})[0]["conversation_id"]
    server.turn(f"/api/conversations/{cid}/messages", {"content": second})
    server.turn(f"/api/conversations/{cid}/messages", {"content": "and now?"})
    sent = [m["content"] for m in server.upstream.stats.bodies[-1]["messages"]]
    # 3,000 characters hold the newest long message and the replies, not the oldest long message.
    assert sent == ["tok0 tok1 tok2 ", second, "tok0 tok1 tok2 ", "and now?"]


@pytest.mark.parametrize(
    "reply", ["", "x" * 300, "<|im_end|> ### ###", "Title: Bread basics\nsecond line", "1234 5678"]
)
def test_unusable_model_titles_fall_back_deterministically(server: Server, reply: str) -> None:
    server.upstream.behaviour.reply = reply
    try:
        events = server.turn("/api/conversations", {"content": "  Plan a 3-day trip to Lisbon, please!  "})
    finally:
        server.upstream.behaviour.reply = "hello from upstream"
    title = events[-2]["title"]
    if reply.startswith("Title:"):
        assert title == "Bread basics"  # usable after tidying: first line, prefix dropped
        return
    assert (
        title
        == fallback_title("Plan a 3-day trip to Lisbon, please!")
        == "Plan a 3-day trip to Lisbon, please"
    )


def test_client_disconnect_stores_the_partial_reply_marked_interrupted(server: Server) -> None:
    b = server.upstream.behaviour
    b.stream_chunks, b.chunk_delay = 50, 0.1
    completed = server.upstream.stats.completed_streams
    try:
        with httpx.stream(
            "POST",
            f"{server.url}/api/conversations",
            json={"content": "Tell me a very long story"},
            headers=server.headers(),
            timeout=30,
        ) as response:
            deltas = 0
            for line in response.iter_lines():
                if line.startswith("data: "):
                    event = orjson.loads(line[6:])
                    if event["type"] == "start":
                        cid = event["conversation_id"]
                    deltas += event["type"] == "delta"
                    if deltas == 2:
                        break  # leaving the block closes the connection mid-stream

        def stored() -> httpx.Response | None:
            found = server.get(f"/api/conversations/{cid}")
            return found if found.status_code == 200 else None

        r = wait_until(stored, 10, what="conversation stored")
        user, assistant = r.json()["messages"]
        assert user["content"] == "Tell me a very long story"
        assert assistant["status"] == "interrupted"
        assert assistant["metadata"]["interrupted_reason"] == "client_disconnected"
        assert assistant["content"].startswith("tok0 tok1 ") and len(assistant["content"].split()) < 50
        # The model was stopped, not left generating for nobody.
        wait_until(lambda: server.upstream.stats.active_streams == 0, 10, what="upstream stream closed")
        assert server.upstream.stats.completed_streams == completed  # stopped, not run to the end
        assert r.json()["title"] == "Tell me a very long story"  # no model title for an unfinished exchange
    finally:
        b.stream_chunks, b.chunk_delay = 3, 0.0


def test_an_unreachable_model_is_an_error_and_nothing_is_stored(server: Server) -> None:
    before = len(server.get("/api/conversations", limit=200).json())
    r = server.post("/api/conversations", {"content": "hello?", "model": "broken"})
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "no_deployment_available" and "broken" in r.json()["error"]["message"]
    assert len(server.get("/api/conversations", limit=200).json()) == before


def test_an_upstream_failure_mid_reply_is_reported_and_the_partial_reply_kept(server: Server) -> None:
    events = server.turn("/api/conversations", {"content": "Tell me something", "model": "flaky"})
    assert _types(events) == ["start", "delta", "delta", "message", "error"]
    assert events[-1]["error"]["code"] == "upstream_stream_error"
    assistant = events[3]["assistant"]
    assert (assistant["content"], assistant["status"]) == ("half a reply", "interrupted")
    assert assistant["metadata"]["interrupted_reason"] == "upstream_error"
    detail = server.get(f"/api/conversations/{events[0]['conversation_id']}").json()
    assert [m["status"] for m in detail["messages"]] == ["complete", "interrupted"]
    assert detail["title"] == "Tell me something"  # no model title for an unfinished exchange
    # The first exchange that completes gets the model's title; an unusable one keeps the first message's.
    server.upstream.behaviour.reply = ""
    try:
        follow = server.turn(f"/api/conversations/{detail['id']}/messages", {"content": "Try again"})
    finally:
        server.upstream.behaviour.reply = "hello from upstream"
    assert follow[-2] == {"type": "title", "conversation_id": detail["id"], "title": "Tell me something"}
    again = server.turn(f"/api/conversations/{detail['id']}/messages", {"content": "Once more"})
    assert "title" not in _types(again)  # titled once


def test_concurrent_turns_in_one_conversation_all_get_their_place(server: Server) -> None:
    cid = server.turn("/api/conversations", {"content": "start"})[0]["conversation_id"]
    server.upstream.behaviour.chunk_delay = 0.02
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(
                pool.map(
                    lambda i: server.turn(f"/api/conversations/{cid}/messages", {"content": f"parallel {i}"}),
                    range(4),
                )
            )
    finally:
        server.upstream.behaviour.chunk_delay = 0.0
    assert all(_types(events)[-1] == "done" for events in results)
    messages = server.get(f"/api/conversations/{cid}/messages").json()
    assert len(messages) == 10
    assert sorted(m["content"] for m in messages if m["role"] == "user") == [
        "parallel 0",
        "parallel 1",
        "parallel 2",
        "parallel 3",
        "start",
    ]
    # Each user message is directly followed by its own reply.
    assert [m["role"] for m in messages] == ["user", "assistant"] * 5


def test_non_streamed_turn_returns_both_messages(server: Server) -> None:
    r = server.post("/api/conversations", {"content": "Quick one", "stream": False})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["user"]["content"] == "Quick one" and body["assistant"]["content"] == "tok0 tok1 tok2 "
    assert body["title"] == "Hello from upstream"
    assert server.get(f"/api/conversations/{body['conversation_id']}").json()["message_count"] == 2


def test_preferences_apply_when_a_request_does_not_say(server: Server) -> None:
    other = server.other_key
    assert server.get("/api/me/preferences", other).json() == {
        "model": None,
        "rag_enabled": False,
        "collection": None,
        "voice": None,
    }
    r = httpx.put(
        f"{server.url}/api/me/preferences",
        json={"model": "fast", "voice": "joe"},
        headers=server.headers(other),
    )
    assert r.status_code == 200 and r.json()["model"] == "fast" and r.json()["voice"] == "joe"
    events = server.turn("/api/conversations", {"content": "hi"}, other)
    assert events[0]["model"] == "fast" and server.upstream.stats.bodies[-2]["model"] == "m-fast"
    events = server.turn("/api/conversations", {"content": "hi", "model": "chat"}, other)  # the request wins
    assert events[0]["model"] == "chat"
    # Partial update keeps the other fields; null clears one.
    r = httpx.put(f"{server.url}/api/me/preferences", json={"model": None}, headers=server.headers(other))
    assert r.json() == {"model": None, "rag_enabled": False, "collection": None, "voice": "joe"}
    bad = httpx.put(
        f"{server.url}/api/me/preferences", json={"model": "ghost"}, headers=server.headers(other)
    )
    assert bad.status_code == 404 and "ghost" in bad.json()["error"]["message"]
    bad = httpx.put(
        f"{server.url}/api/me/preferences", json={"rag_enabled": "yes"}, headers=server.headers(other)
    )
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "rag_enabled"
    # RAG on by default without a collection: a clear error on the next message, nothing stored.
    httpx.put(f"{server.url}/api/me/preferences", json={"rag_enabled": True}, headers=server.headers(other))
    before = len(server.get("/api/conversations", other).json())
    r = server.post("/api/conversations", {"content": "what do my notes say?"}, other)
    assert r.status_code == 400 and "collection" in r.json()["error"]["message"]
    assert len(server.get("/api/conversations", other).json()) == before
    httpx.put(f"{server.url}/api/me/preferences", json={"rag_enabled": False}, headers=server.headers(other))


def test_no_user_can_reach_another_users_conversation(server: Server) -> None:
    cid = server.turn("/api/conversations", {"content": "my secret plan"})[0]["conversation_id"]
    mid = server.get(f"/api/conversations/{cid}").json()["messages"][0]["id"]
    other = server.other_key
    for path in (
        f"/api/conversations/{cid}",
        f"/api/conversations/{cid}/messages",
        f"/api/conversations/{cid}/messages/{mid}",
    ):
        r = server.get(path, other)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error", path
    r = server.post(f"/api/conversations/{cid}/messages", {"content": "let me in"}, other)
    assert r.status_code == 404
    assert (
        httpx.delete(f"{server.url}/api/conversations/{cid}", headers=server.headers(other)).status_code
        == 404
    )
    assert cid not in [c["id"] for c in server.get("/api/conversations", other).json()]
    assert server.get("/api/conversations/search", other, q="secret plan").json() == []
    # Still the owner's, untouched.
    assert server.get(f"/api/conversations/{cid}").json()["message_count"] == 2


def test_messages_are_immutable(server: Server) -> None:
    cid = server.turn("/api/conversations", {"content": "original words"})[0]["conversation_id"]
    mid = server.get(f"/api/conversations/{cid}").json()["messages"][0]["id"]
    for method in ("PUT", "PATCH", "DELETE"):
        r = httpx.request(
            method,
            f"{server.url}/api/conversations/{cid}/messages/{mid}",
            json={"content": "edited"},
            headers=server.headers(),
        )
        assert r.status_code == 405, method
        assert (
            r.json()["error"]["code"] == "message_immutable" and "immutable" in r.json()["error"]["message"]
        )
    assert server.get(f"/api/conversations/{cid}/messages/{mid}").json()["content"] == "original words"


def test_bad_input_is_refused_and_nothing_is_stored(server: Server) -> None:
    before = len(server.get("/api/conversations", limit=200).json())
    cases = [
        ({"content": "   "}, 422, "empty"),
        ({"content": 123}, 422, "content"),
        ({}, 422, "content"),
        ({"content": "x" * 2001}, 413, "limit is 2000"),
        ({"content": "hi", "model": "ghost"}, 404, "ghost"),
        ({"content": "hi", "rag": "maybe"}, 422, "rag"),
        ({"content": "hi", "colection": "x"}, 422, "colection"),
        ({"content": "hi", "max_tokens": 0}, 422, "max_tokens"),
        ({"content": "hi", "session_id": "nope"}, 404, "session"),
    ]
    for body, status, words in cases:
        r = server.post("/api/conversations", body)
        assert r.status_code == status, (body, r.text)
        assert words in r.json()["error"]["message"], (body, r.text)
    r = httpx.post(
        f"{server.url}/api/conversations",
        content=b"{not json",
        headers={**server.headers(), "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    assert server.post(f"/api/conversations/{'0' * 32}/messages", {"content": "hi"}).status_code == 404
    assert len(server.get("/api/conversations", limit=200).json()) == before
    assert httpx.get(f"{server.url}/api/conversations").status_code == 401


def test_list_search_and_delete(server: Server) -> None:
    a = server.turn("/api/conversations", {"content": "Sourdough starter feeding schedule"})[0][
        "conversation_id"
    ]
    b = server.turn("/api/conversations", {"content": "Tuning a bicycle derailleur"})[0]["conversation_id"]
    listed = [c["id"] for c in server.get("/api/conversations", limit=200).json()]
    assert listed.index(b) < listed.index(a)  # most recently active first
    hits = server.get("/api/conversations/search", q="DERAILLEUR").json()
    assert [h["conversation"]["id"] for h in hits] == [b] and "derailleur" in hits[0]["snippet"]
    assert server.get("/api/conversations/search", q="100%_").json() == []  # LIKE wildcards are literal
    assert server.get("/api/conversations/search", q=" ").status_code == 422
    assert httpx.delete(f"{server.url}/api/conversations/{a}", headers=server.headers()).status_code == 204
    assert server.get(f"/api/conversations/{a}").status_code == 404
    assert server.get("/api/conversations/search", q="sourdough").json() == []
    assert server.events_of(a) == [
        "ConversationStarted",
        "MessageReceived",
        "MessageStored",
        "ResponseGenerated",
        "MessageStored",
        "ConversationTitled",
        "ConversationDeleted",
    ]


def test_sessions_api_and_messages_in_a_session(server: Server) -> None:
    r = server.post("/api/sessions", {"kind": "chat"})
    assert r.status_code == 201
    session = r.json()
    assert session["kind"] == "chat" and session["expires_at"] > session["last_activity"]
    events = server.turn("/api/conversations", {"content": "in a session", "session_id": session["id"]})
    stored = events[_types(events).index("message")]
    assert stored["user"]["session_id"] == session["id"] == stored["assistant"]["session_id"]
    after = server.get(f"/api/sessions/{session['id']}").json()
    assert datetime.fromisoformat(after["last_activity"]) > datetime.fromisoformat(session["last_activity"])
    assert session["id"] in [s["id"] for s in server.get("/api/sessions").json()]
    assert server.get(f"/api/sessions/{session['id']}", server.other_key).status_code == 404
    assert server.post("/api/sessions", {"kind": "video"}).status_code == 422
