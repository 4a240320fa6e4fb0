"""Voice pieces without a server: which earlier turns of a streamed conversation the LLM reads, and how the
WebSocket authenticates (and which pages may use the session cookie on it)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from fastapi import FastAPI, WebSocket
from starlette.requests import HTTPConnection
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from hearth.auth.deps import same_origin
from hearth.auth.principal import Principal
from hearth.voice.api import _authenticate
from hearth.voice.service import history_window


def conversation(turns: int) -> list[dict[str, str]]:
    out = []
    for i in range(turns):
        out += [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
    return out


def test_history_window_keeps_its_start_so_the_llm_prompt_cache_holds() -> None:
    kept = [[m["content"] for m in history_window(conversation(n))] for n in range(10)]
    assert kept[0] == [] and kept[1] == ["q0", "a0"]
    assert kept[4] == ["q0", "a0", "q1", "a1", "q2", "a2", "q3", "a3"]  # at most 4 earlier turns
    assert kept[5] == ["q4", "a4"]  # then it starts again from the last one
    assert kept[8] == ["q4", "a4", "q5", "a5", "q6", "a6", "q7", "a7"]
    # Between two resets each turn's prompt extends the last one: only the new question is evaluated.
    for n in (1, 2, 3, 5, 6, 7):
        assert kept[n + 1][: len(kept[n])] == kept[n]


# -- the WebSocket's authentication: the HTTP authenticator, the header or a first `auth` message ----------

GOOD_KEY = "hk-good"
UNAUTHORIZED = {
    "type": "error",
    "status": 401,
    "code": "invalid_api_key",
    "message": "missing or invalid API key",
}


class _Auth:
    async def authenticate(self, token: str) -> Principal | None:
        if token != GOOD_KEY:
            return None
        return Principal("u1", "alice", "user", "k1", "standard", None, None)


def _socket_app() -> FastAPI:
    app = FastAPI()
    app.state.platform = SimpleNamespace(auth=_Auth())

    @app.websocket("/ws")
    async def ws_route(ws: WebSocket) -> None:
        principal = await _authenticate(ws)
        if principal is not None:
            await ws.send_json({"type": "ready", "user": principal.username})
            await ws.close()

    return app


@pytest.mark.parametrize(
    ("headers", "first"),
    [
        ({"Authorization": f"Bearer {GOOD_KEY}"}, None),
        ({}, {"type": "auth", "api_key": GOOD_KEY}),
        ({"Authorization": "Bearer "}, {"type": "auth", "api_key": f" {GOOD_KEY} "}),
    ],
)
def test_websocket_key_from_the_header_or_the_first_message(headers: dict[str, str], first: Any) -> None:
    with TestClient(_socket_app()) as client, client.websocket_connect("/ws", headers=headers) as ws:
        if first is not None:
            ws.send_text(orjson.dumps(first).decode())
        assert ws.receive_json() == {"type": "ready", "user": "alice"}


@pytest.mark.parametrize(
    ("headers", "first"),
    [
        ({"Authorization": "Bearer hk-wrong"}, None),  # a wrong header key gets no second chance
        ({}, {"type": "auth", "api_key": "hk-wrong"}),
        ({}, {"type": "auth"}),
        ({}, {"type": "start"}),
        ({"Authorization": f"Basic {GOOD_KEY}"}, {"type": "hello"}),
    ],
)
def test_websocket_without_a_valid_key_gets_one_error_and_4401(headers: dict[str, str], first: Any) -> None:
    with TestClient(_socket_app()) as client, client.websocket_connect("/ws", headers=headers) as ws:
        if first is not None:
            ws.send_text(orjson.dumps(first).decode())
        assert ws.receive_json() == UNAUTHORIZED
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4401


# -- the session cookie's Origin check (auth.deps.same_origin) -------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "host", "origin", "same"),
    [
        ("ws", "127.0.0.1:8080", "http://127.0.0.1:8080", True),
        ("wss", "hearth.example", "https://hearth.example", True),
        ("wss", "hearth.example:443", "https://hearth.example", True),  # a default port in Host only
        ("ws", "Hearth.Example", "http://hearth.example/", True),
        ("ws", "hearth.example", "https://hearth.example", False),  # another scheme is another origin
        ("ws", "127.0.0.1:8080", "http://127.0.0.1:8081", False),  # another port: same site, not origin
        ("ws", "hearth.example", "http://hearth.example.evil.example", False),
        ("ws", "hearth.example", "null", False),  # sandboxed frames, file: pages
        ("ws", "hearth.example", None, False),
    ],
)
def test_same_origin(scheme: str, host: str, origin: str | None, same: bool) -> None:
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin else [])
    scope = {"type": "websocket", "scheme": scheme, "path": "/api/voice/stream", "headers": headers}
    assert same_origin(HTTPConnection(scope)) is same
