"""Chat routes under /api: conversations and their messages (replies streamed as SSE), preferences, sessions.

Thin: parse, call the service, shape the reply. Every route acts for the caller only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from hearth.auth.deps import require_principal
from hearth.auth.principal import Principal
from hearth.chat.ports import SERVICE
from hearth.chat.schemas import (
    ConversationDetail,
    ConversationOut,
    MessageOut,
    Preferences,
    PreferencesUpdate,
    SearchHit,
    SendMessage,
    SessionOpen,
    SessionOut,
)
from hearth.chat.service import ChatService, Turn
from hearth.chat.sessions import Session
from hearth.gateway.service import metered_caller
from hearth.platform.deps import port
from hearth.platform.errors import HearthError

router = APIRouter(prefix="/api", tags=["chat"])


def _chat(request: Request) -> ChatService:
    return port(SERVICE)(request)


# -- conversations -------------------------------------------------------------------------------------


@router.post("/conversations")
async def create_conversation(
    body: SendMessage, request: Request, principal: Principal = Depends(require_principal)
) -> Response:
    """Start a conversation with its first message; the reply streams back as SSE."""
    turn = await _chat(request).begin(
        user_id=principal.user_id,
        caller=metered_caller(request.app, principal),
        conversation_id=None,
        request=body,
    )
    return await _reply(turn, stream=body.stream, status=201)


@router.post("/conversations/{conversation_id}/messages")
async def send_message(
    conversation_id: str,
    body: SendMessage,
    request: Request,
    principal: Principal = Depends(require_principal),
) -> Response:
    """Add a message to one of the caller's conversations; the reply streams back as SSE."""
    turn = await _chat(request).begin(
        user_id=principal.user_id,
        caller=metered_caller(request.app, principal),
        conversation_id=conversation_id,
        request=body,
    )
    return await _reply(turn, stream=body.stream, status=200)


@router.get("/conversations")
async def list_conversations(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0),
    principal: Principal = Depends(require_principal),
) -> list[ConversationOut]:
    return await _chat(request).list_conversations(user_id=principal.user_id, limit=limit, offset=offset)


@router.get("/conversations/search")
async def search_conversations(
    request: Request,
    q: str = Query(..., max_length=500),
    limit: int = Query(20, ge=1, le=100),
    principal: Principal = Depends(require_principal),
) -> list[SearchHit]:
    return await _chat(request).search(user_id=principal.user_id, text=q, limit=limit)


@router.get("/conversations/{conversation_id}")
async def get_conversation(
    conversation_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> ConversationDetail:
    return await _chat(request).get_conversation(user_id=principal.user_id, conversation_id=conversation_id)


@router.delete("/conversations/{conversation_id}", status_code=204)
async def delete_conversation(
    conversation_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> Response:
    await _chat(request).delete_conversation(user_id=principal.user_id, conversation_id=conversation_id)
    return Response(status_code=204)


@router.get("/conversations/{conversation_id}/messages")
async def list_messages(
    conversation_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> list[MessageOut]:
    detail = await _chat(request).get_conversation(user_id=principal.user_id, conversation_id=conversation_id)
    return detail.messages


@router.get("/conversations/{conversation_id}/messages/{message_id}")
async def get_message(
    conversation_id: str, message_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> MessageOut:
    return await _chat(request).get_message(
        user_id=principal.user_id, conversation_id=conversation_id, message_id=message_id
    )


@router.api_route(
    "/conversations/{conversation_id}/messages/{message_id}", methods=["PUT", "PATCH", "DELETE"]
)
@router.api_route("/conversations/{conversation_id}/messages", methods=["PUT", "PATCH", "DELETE"])
async def edit_message(_: Principal = Depends(require_principal)) -> Response:
    """Messages are immutable (seed 000): say so instead of a bare 405."""
    raise HearthError(
        405,
        "messages are immutable once stored: send a new message instead, or delete the whole conversation",
        code="message_immutable",
        type="invalid_request_error",
        headers={"Allow": "GET"},
    )


# -- preferences ---------------------------------------------------------------------------------------


@router.get("/me/preferences")
async def get_preferences(request: Request, principal: Principal = Depends(require_principal)) -> Preferences:
    return await _chat(request).preferences.get(user_id=principal.user_id)


@router.put("/me/preferences")
async def put_preferences(
    body: PreferencesUpdate, request: Request, principal: Principal = Depends(require_principal)
) -> Preferences:
    return await _chat(request).preferences.update(user_id=principal.user_id, changes=body)


# -- sessions ------------------------------------------------------------------------------------------


@router.post("/sessions", status_code=201)
async def open_session(
    body: SessionOpen, request: Request, principal: Principal = Depends(require_principal)
) -> SessionOut:
    sessions = _chat(request).sessions
    opened = await sessions.open(user_id=principal.user_id, kind=body.kind, metadata=body.metadata)
    return _session_out(request, opened)


@router.get("/sessions")
async def list_sessions(
    request: Request, principal: Principal = Depends(require_principal)
) -> list[SessionOut]:
    found = await _chat(request).sessions.list(user_id=principal.user_id)
    return [_session_out(request, s) for s in found]


@router.get("/sessions/{session_id}")
async def get_session(
    session_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> SessionOut:
    found = await _chat(request).sessions.get(user_id=principal.user_id, session_id=session_id)
    return _session_out(request, found)


@router.post("/sessions/{session_id}/touch")
async def touch_session(
    session_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> SessionOut:
    touched = await _chat(request).sessions.touch(user_id=principal.user_id, session_id=session_id)
    return _session_out(request, touched)


def _session_out(request: Request, session: Session) -> SessionOut:
    return SessionOut(
        id=session.id,
        user_id=session.user_id,
        kind=session.kind,
        started_at=session.started_at,
        last_activity=session.last_activity,
        expires_at=_chat(request).sessions.expires_at(session),
        metadata=session.metadata,
    )


# -- streaming -----------------------------------------------------------------------------------------


async def _reply(turn: Turn, *, stream: bool, status: int) -> Response:
    if stream:
        return TurnResponse(turn, status=status)
    try:
        events = [event async for event in turn.events()]
    finally:
        await turn.close()
    result: dict[str, Any] = {"conversation_id": turn.conversation_id}
    for event in events:
        if event["type"] == "message":
            result.update(user=event["user"], assistant=event["assistant"])
        elif event["type"] == "title":
            result["title"] = event["title"]
        elif event["type"] == "error":
            result["error"] = event["error"]
    if "assistant" not in result:
        raise HearthError(502, "the reply could not be completed or stored", code="not_stored")
    return Response(orjson.dumps(result), status_code=status, media_type="application/json")


class TurnResponse(StreamingResponse):
    """SSE of a turn's events. However the response ends (done, error, client gone before or during the
    stream), `turn.close()` runs, so the model stops and what was said is stored."""

    def __init__(self, turn: Turn, *, status: int) -> None:
        self.turn = turn
        super().__init__(
            _sse(turn.events()),
            status_code=status,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.turn.close()


async def _sse(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for event in events:
        yield b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
