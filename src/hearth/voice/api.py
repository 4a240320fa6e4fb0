"""Voice routes: POST /api/voice (one whole turn), the WebSocket /api/voice/stream (streamed turns with
barge-in), and the caller's own stored requests. Thin: parse, call the service, shape the reply."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.responses import Response

from hearth.auth.deps import (
    SESSION_COOKIE,
    CurrentUser,
    authenticate,
    authenticate_websocket_session,
    bearer_token,
)
from hearth.auth.principal import Principal
from hearth.gateway.audio import encode_pcm
from hearth.gateway.service import Caller, metered_caller
from hearth.platform.db import new_id
from hearth.platform.deps import port
from hearth.platform.errors import HearthError, bad_request, invalid
from hearth.platform.kit.openapi import MODEL_ERRORS, errors, json_body, multipart_schema
from hearth.voice.pipeline import TurnResult
from hearth.voice.ports import SERVICE
from hearth.voice.schemas import StreamStart, VoiceRequestBody, VoiceRequestOut, VoiceResponseOut
from hearth.voice.service import TurnInput, VoiceService

router = APIRouter(prefix="/api/voice", tags=["voice"])
log = logging.getLogger("hearth.voice")
Voice = Annotated[VoiceService, Depends(port(SERVICE))]


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


_VOICE_FORM = multipart_schema(
    {
        name: field
        for name, field in VoiceRequestBody.model_json_schema()["properties"].items()
        if name != "audio_b64"
    }
)


@router.post(
    "",
    response_model=VoiceResponseOut,
    openapi_extra=json_body(VoiceRequestBody, multipart=_VOICE_FORM),
    responses=errors(*MODEL_ERRORS),
)
async def voice(request: Request, principal: CurrentUser, service: Voice) -> Response:
    turn = await _turn_input(request)
    # The voice request's id: its events and rows share it.
    caller = await metered_caller(request.app, principal, request_id=new_id())
    result = await service.respond(caller=caller, turn=turn)
    return _json(result.model_dump())


async def _turn_input(request: Request) -> TurnInput:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=1, max_fields=32)
        except Exception as exc:  # python-multipart's parse errors share no useful base
            raise bad_request(f"the multipart body cannot be parsed: {exc}", code="invalid_body") from None
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise bad_request(
                    "send the audio as the multipart field 'file'", param="file", code="missing_file"
                )
            fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str) and k != "file"}
            fields["audio_b64"] = "-"  # the file stands in for it
            body = _validate(fields)
            audio = await upload.read()
        finally:
            await form.close()  # removes the spooled temporary file
    else:
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise bad_request(
                "send JSON (seed VoiceRequest) or multipart with a 'file'", code="invalid_json"
            ) from None
        if not isinstance(data, dict):
            raise bad_request("request body must be a JSON object", code="invalid_json")
        body = _validate(data)
        try:
            audio = base64.b64decode(body.audio_b64, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("audio_b64 is not valid base64", param="audio_b64") from None
    return TurnInput(
        audio=audio,
        declared_format=body.format,
        enable_rag=body.enable_rag,
        collection=body.collection,
        model=body.model,
        voice=body.voice,
        language=body.language,
        audio_format=body.audio_format,
        session_id=body.session_id,
    )


def _validate(data: dict[str, Any]) -> VoiceRequestBody:
    try:
        return VoiceRequestBody.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc.errors()) from None


@router.get("/requests")
async def list_requests(
    principal: CurrentUser, service: Voice, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[VoiceRequestOut]:
    return await service.list_requests(user_id=principal.user_id, limit=limit)


@router.get("/requests/{request_id}")
async def get_request(request_id: str, principal: CurrentUser, service: Voice) -> VoiceRequestOut:
    return await service.get_request(user_id=principal.user_id, request_id=request_id)


_MEDIA = {"wav": "audio/wav", "mp3": "audio/mpeg", "webm": "audio/webm", "opus": "audio/ogg"}


@router.get(
    "/requests/{request_id}/audio",
    response_class=Response,
    responses={
        200: {
            "description": "The stored audio",
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in (*_MEDIA.values(), "application/octet-stream")
            },
        }
    },
)
async def get_audio(
    request_id: str,
    principal: CurrentUser,
    service: Voice,
    which: Annotated[str, Query(pattern="^(request|response)$")] = "response",
) -> Response:
    data, fmt = await service.get_audio(user_id=principal.user_id, request_id=request_id, which=which)
    return Response(data, media_type=_MEDIA.get(fmt, "application/octet-stream"))


# -- WebSocket --------------------------------------------------------------------------------------------


class _Socket:
    """Serializes sends (the turn task and the receive loop both send) and speaks the protocol's shapes."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        async with self.lock:
            await self.ws.send_text(orjson.dumps(message).decode())

    async def error(self, exc: HearthError) -> None:
        await self.send({"type": "error", "status": exc.status, "code": exc.code, "message": exc.message})


async def _authenticate(ws: WebSocket) -> Principal | None:
    """Who opened the socket: the Bearer key of the handshake's Authorization header; else the web UI's
    session cookie, only from a page of this server's own origin (auth.deps.same_origin); else a key in a
    first `auth` message (browsers cannot set headers on a WebSocket). Keys are checked by the same
    authenticator as HTTP."""
    token = bearer_token(ws.headers)
    cookie = ws.cookies.get(SESSION_COOKIE, "")
    await ws.accept()
    if not token and cookie:
        try:
            return await authenticate_websocket_session(ws, cookie)
        except HearthError as exc:
            await _refuse(ws, exc.status, exc.code or "invalid_session", exc.message)
            return None
    if not token:
        try:
            first = orjson.loads(await asyncio.wait_for(ws.receive_text(), 10))
        except (TimeoutError, orjson.JSONDecodeError, KeyError, WebSocketDisconnect):
            first = {}
        token = (
            str(first.get("api_key") or "") if isinstance(first, dict) and first.get("type") == "auth" else ""
        )
    try:
        return await authenticate(ws, token.strip())
    except HearthError:
        # One answer for a missing and a wrong key, so a probe learns nothing.
        await _refuse(ws, 401, "invalid_api_key", "missing or invalid API key")
        return None


async def _refuse(ws: WebSocket, status: int, code: str, message: str) -> None:
    """An error message, then the close code 4000 + status (4401, 4403)."""
    with contextlib.suppress(Exception):
        await ws.send_text(
            orjson.dumps({"type": "error", "status": status, "code": code, "message": message}).decode()
        )
        await ws.close(code=4000 + status)


@router.websocket("/stream")
async def stream(ws: WebSocket, voice: Voice) -> None:
    """Protocol (JSON text frames unless noted):
    client → {"type":"start", …options} (optional), binary frames of audio, {"type":"end"} (end of speech),
             {"type":"interrupt"} (barge-in: stop talking), {"type":"close"};
    server → {"type":"ready","session_id"}, then per turn {"type":"transcript","text"},
             {"type":"delta","text"}…, {"type":"audio","index","text","format","audio_b64"} per sentence,
             and {"type":"done","response"} or {"type":"interrupted","request_id","stored"};
             errors are {"type":"error","status","code","message"}."""
    principal = await _authenticate(ws)
    if principal is None:
        return
    max_bytes = ws.app.state.platform.settings.max_upload_bytes
    sock = _Socket(ws)
    try:
        session_id = await voice.open_session(
            user_id=principal.user_id, session_id=ws.query_params.get("session_id")
        )
    except HearthError as exc:
        await sock.error(exc)
        await ws.close(code=4404)
        return
    await sock.send({"type": "ready", "session_id": session_id})
    history: list[dict[str, str]] = []
    start = StreamStart(type="start")
    audio = bytearray()
    running: tuple[asyncio.Task[None], TurnResult, Caller] | None = None

    async def interrupt() -> None:
        nonlocal running
        if running is None:
            return
        task, result, caller = running
        running = None
        if task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        with contextlib.suppress(Exception):
            await sock.send(
                {"type": "interrupted", "request_id": caller.request_id, "stored": bool(result.transcription)}
            )

    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("bytes") is not None:
                await interrupt()  # the user talks over the answer: barge-in
                audio.extend(message["bytes"])
                if len(audio) > max_bytes:
                    await sock.error(
                        HearthError(413, f"the audio exceeds {max_bytes} bytes", code="too_large")
                    )
                    audio.clear()
                continue
            try:
                data = orjson.loads(message.get("text") or "")
                kind = data.get("type") if isinstance(data, dict) else None
            except orjson.JSONDecodeError:
                kind = None
            if kind == "start":
                await interrupt()
                try:
                    start = StreamStart.model_validate(data)
                except ValidationError as exc:
                    await sock.error(invalid(exc.errors()))
                    continue
                audio.clear()
            elif kind == "interrupt":
                await interrupt()
            elif kind == "end":
                await interrupt()
                if not audio:
                    await sock.error(bad_request("no audio was sent before 'end'", code="empty_audio"))
                    continue
                turn = TurnInput(
                    audio=bytes(audio),
                    declared_format=start.format,
                    enable_rag=start.enable_rag,
                    collection=start.collection,
                    model=start.model,
                    voice=start.voice,
                    language=start.language,
                    audio_format=start.audio_format,
                    session_id=session_id,
                    streaming=True,
                )
                audio.clear()
                try:
                    caller = await metered_caller(ws.app, principal, request_id=new_id())
                except HearthError as exc:
                    await sock.error(exc)
                    continue
                result = TurnResult()
                task = asyncio.create_task(_run(voice, sock, caller, turn, result, history))
                running = (task, result, caller)
            elif kind == "close":
                break
            else:
                await sock.error(bad_request("unknown message; expected start, end, interrupt or close"))
    except WebSocketDisconnect:
        pass
    finally:
        await interrupt()
        with contextlib.suppress(Exception):
            await ws.close()


async def _run(
    voice: VoiceService,
    sock: _Socket,
    caller: Caller,
    turn: TurnInput,
    result: TurnResult,
    history: list[dict[str, str]],
) -> None:
    """One streamed turn. Cancelled on barge-in: the partial answer is stored, marked interrupted."""
    try:
        audio = await asyncio.to_thread(voice.decode, turn)
        options = voice.with_history(await voice.options(user_id=caller.user_id, turn=turn), history)
    except HearthError as exc:
        await sock.error(exc)
        return
    try:
        async for message in voice.turn(
            caller=caller, turn=turn, audio=audio, options=options, result=result
        ):
            if message["type"] == "audio":
                clip = await asyncio.to_thread(
                    encode_pcm, message.pop("pcm"), message.pop("rate"), turn.audio_format
                )
                message |= {"format": turn.audio_format, "audio_b64": base64.b64encode(clip).decode()}
            await sock.send(message)
    except asyncio.CancelledError:
        result.interrupted = True
        with contextlib.suppress(Exception):
            await asyncio.shield(_store_interrupted(voice, caller, turn, audio, options, result))
        raise
    except HearthError as exc:
        await sock.error(exc)
        return
    # Shielded: a barge-in arriving now must not cut the store in half.
    response = await asyncio.shield(
        voice.finish(
            caller=caller, turn=turn, audio=audio, options=options, result=result, session_id=turn.session_id
        )
    )
    history += [
        {"role": "user", "content": result.transcription},
        {"role": "assistant", "content": result.response_text},
    ]
    await sock.send({"type": "done", "response": _without_audio(response)})


async def _store_interrupted(
    voice: VoiceService,
    caller: Caller,
    turn: TurnInput,
    audio: Any,
    options: Any,
    result: TurnResult,
) -> None:
    # Nothing was understood yet: nothing worth keeping.
    if not result.transcription:
        return
    await voice.finish(
        caller=caller, turn=turn, audio=audio, options=options, result=result, session_id=turn.session_id
    )


def _without_audio(response: VoiceResponseOut) -> dict[str, Any]:
    # The audio already went out sentence by sentence.
    return response.model_dump() | {"audio_b64": ""}
