"""Chat routes under /api: conversations and their messages (replies streamed as SSE), preferences, sessions.

Thin: parse, call the service, shape the reply. Every route acts for the caller only."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from hearth.auth.deps import CurrentUser
from hearth.chat.ports import SERVICE
from hearth.chat.schemas import (
    ConversationDetail,
    ConversationOut,
    ConversationRename,
    MessageOut,
    Preferences,
    PreferencesUpdate,
    SearchHit,
    SendMessage,
    SessionOpen,
    SessionOut,
    TurnReply,
)
from hearth.chat.service import ChatService, Turn
from hearth.chat.sessions import Session
from hearth.gateway.service import metered_caller
from hearth.platform.deps import port
from hearth.platform.errors import HearthError
from hearth.platform.kit.openapi import MODEL_ERRORS, allowed_methods, errors, event_stream, refuses
from hearth.platform.kit.repository import MAX_SQL_INT
from hearth.platform.kit.sse import SSEResponse, named_frames

router = APIRouter(prefix="/api", tags=["chat"])
Chat = Annotated[ChatService, Depends(port(SERVICE))]


# -- conversations -------------------------------------------------------------------------------------


def _turn_responses(status: int) -> dict[int | str, dict[str, Any]]:
    # 403: a collection shared read-only is fine to ask, but a RAG turn names it; 503: RAG is not running.
    return {**errors(403, *MODEL_ERRORS), **event_stream(status)}


@router.post("/conversations", status_code=201, response_model=TurnReply, responses=_turn_responses(201))
async def create_conversation(
    body: SendMessage, request: Request, principal: CurrentUser, chat: Chat
) -> Response:
    """Start a conversation with its first message; the reply streams back as SSE."""
    turn = await chat.begin(
        user_id=principal.user_id,
        caller=await metered_caller(request.app, principal),
        conversation_id=None,
        request=body,
    )
    return await _reply(turn, stream=body.stream, status=201)


@router.post(
    "/conversations/{conversation_id}/messages", response_model=TurnReply, responses=_turn_responses(200)
)
async def send_message(
    conversation_id: str, body: SendMessage, request: Request, principal: CurrentUser, chat: Chat
) -> Response:
    """Add a message to one of the caller's conversations; the reply streams back as SSE."""
    turn = await chat.begin(
        user_id=principal.user_id,
        caller=await metered_caller(request.app, principal),
        conversation_id=conversation_id,
        request=body,
    )
    return await _reply(turn, stream=body.stream, status=200)


@router.get("/conversations")
async def list_conversations(
    principal: CurrentUser,
    chat: Chat,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
) -> list[ConversationOut]:
    return await chat.list_conversations(user_id=principal.user_id, limit=limit, offset=offset)


@router.get("/conversations/search")
async def search_conversations(
    q: Annotated[str, Query(max_length=500, json_schema_extra={"pattern": r"\S"})],  # not blank
    principal: CurrentUser,
    chat: Chat,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[SearchHit]:
    return await chat.search(user_id=principal.user_id, text=q, limit=limit)


@router.get("/conversations/{conversation_id}")
async def get_conversation(conversation_id: str, principal: CurrentUser, chat: Chat) -> ConversationDetail:
    return await chat.get_conversation(user_id=principal.user_id, conversation_id=conversation_id)


@router.patch("/conversations/{conversation_id}")
async def rename_conversation(
    conversation_id: str, body: ConversationRename, principal: CurrentUser, chat: Chat
) -> ConversationOut:
    return await chat.rename_conversation(
        user_id=principal.user_id, conversation_id=conversation_id, title=body.title
    )


@router.delete("/conversations/{conversation_id}", status_code=204)
async def delete_conversation(conversation_id: str, principal: CurrentUser, chat: Chat) -> Response:
    await chat.delete_conversation(user_id=principal.user_id, conversation_id=conversation_id)
    return Response(status_code=204)


@router.get("/conversations/{conversation_id}/messages")
async def list_messages(conversation_id: str, principal: CurrentUser, chat: Chat) -> list[MessageOut]:
    detail = await chat.get_conversation(user_id=principal.user_id, conversation_id=conversation_id)
    return detail.messages


@router.get("/conversations/{conversation_id}/messages/{message_id}")
async def get_message(
    conversation_id: str, message_id: str, principal: CurrentUser, chat: Chat
) -> MessageOut:
    return await chat.get_message(
        user_id=principal.user_id, conversation_id=conversation_id, message_id=message_id
    )


_IMMUTABLE = (
    "messages are immutable once stored: send a new message instead, or delete the whole conversation"
)


@refuses
async def edit_message(conversation_id: str, message_id: str, request: Request, _: CurrentUser) -> Response:
    """Messages are immutable (seed 000): say so instead of a bare 405."""
    raise _immutable(request)


@refuses
async def edit_messages(conversation_id: str, request: Request, _: CurrentUser) -> Response:
    """Messages are immutable (seed 000): say so instead of a bare 405."""
    raise _immutable(request)


def _immutable(request: Request) -> HearthError:
    allow = ", ".join(allowed_methods(request.app, request.scope))
    return HearthError(
        405, _IMMUTABLE, code="message_immutable", type="invalid_request_error", headers={"Allow": allow}
    )


# Not operations of the API, so not in the OpenAPI document (whose `Allow` they would contradict); one route
# per method all the same, so none shares an operation id.
for _method in ("PUT", "PATCH", "DELETE"):
    router.add_api_route(
        "/conversations/{conversation_id}/messages/{message_id}",
        edit_message,
        methods=[_method],
        include_in_schema=False,
    )
    router.add_api_route(
        "/conversations/{conversation_id}/messages",
        edit_messages,
        methods=[_method],
        include_in_schema=False,
    )


# -- preferences ---------------------------------------------------------------------------------------


@router.get("/me/preferences")
async def get_preferences(principal: CurrentUser, chat: Chat) -> Preferences:
    return await chat.preferences.get(user_id=principal.user_id)


@router.put("/me/preferences", responses=errors(404))
async def put_preferences(body: PreferencesUpdate, principal: CurrentUser, chat: Chat) -> Preferences:
    return await chat.preferences.update(user_id=principal.user_id, changes=body)


# -- sessions ------------------------------------------------------------------------------------------


@router.post("/sessions", status_code=201)
async def open_session(body: SessionOpen, principal: CurrentUser, chat: Chat) -> SessionOut:
    opened = await chat.sessions.open(user_id=principal.user_id, kind=body.kind, metadata=body.metadata)
    return _session_out(chat, opened)


@router.get("/sessions")
async def list_sessions(principal: CurrentUser, chat: Chat) -> list[SessionOut]:
    return [_session_out(chat, s) for s in await chat.sessions.list(user_id=principal.user_id)]


@router.get("/sessions/{session_id}")
async def get_session(session_id: str, principal: CurrentUser, chat: Chat) -> SessionOut:
    return _session_out(chat, await chat.sessions.get(user_id=principal.user_id, session_id=session_id))


@router.post("/sessions/{session_id}/touch")
async def touch_session(session_id: str, principal: CurrentUser, chat: Chat) -> SessionOut:
    return _session_out(chat, await chat.sessions.touch(user_id=principal.user_id, session_id=session_id))


def _session_out(chat: ChatService, session: Session) -> SessionOut:
    return SessionOut(
        id=session.id,
        user_id=session.user_id,
        kind=session.kind,
        started_at=session.started_at,
        last_activity=session.last_activity,
        expires_at=chat.sessions.expires_at(session),
        metadata=session.metadata,
    )


# -- streaming -----------------------------------------------------------------------------------------


async def _reply(turn: Turn, *, stream: bool, status: int) -> Response:
    if stream:
        # However the response ends (done, error, client gone before or during the stream), `turn.close()`
        # runs, so the model stops and what was said is stored.
        return SSEResponse(named_frames(turn.events()), on_close=turn.close, status_code=status)
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
