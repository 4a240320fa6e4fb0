"""OpenAI-compatible speech routes: /v1/audio/transcriptions (multipart upload) and /v1/audio/speech
(streamed audio). Thin: check the request, call the gateway, shape the reply."""

from __future__ import annotations

from typing import Any, Literal

import anyio
import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.responses import Response

from hearth.auth.deps import CurrentUser
from hearth.gateway.api import Gw, _parse
from hearth.gateway.audio import TRANSCRIPTION_FORMATS, decode_upload
from hearth.gateway.backends.base import SpeechRequest, Transcription, TranscriptionRequest
from hearth.gateway.service import metered_caller
from hearth.platform.errors import bad_request, invalid
from hearth.platform.kit.openapi import MODEL_ERRORS, errors, json_body, multipart_schema
from hearth.platform.kit.sse import StreamResponse

router = APIRouter(prefix="/v1/audio", tags=["openai"])


class TranscriptionForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    language: str | None = Field(default=None, max_length=16)
    prompt: str | None = Field(default=None, max_length=2000)
    response_format: Literal["json", "text", "verbose_json", "srt", "vtt"] = "json"
    temperature: float = Field(default=0.0, ge=0.0, le=1.0)


class SpeechBody(BaseModel):
    model_config = ConfigDict(extra="ignore")  # `instructions` and future fields: accepted, not used

    model: str = Field(min_length=1)
    input: str = Field(min_length=1, max_length=4096)
    voice: str | dict[str, Any] = "default"
    response_format: Literal["wav", "mp3", "opus", "flac", "pcm"] = "mp3"  # OpenAI's default
    speed: float = Field(default=1.0, ge=0.25, le=4.0)


class Transcript(BaseModel):
    text: str
    task: str | None = None  # these four: verbose_json only
    language: str | None = None
    duration: float | None = None
    segments: list[dict[str, Any]] | None = None


_TRANSCRIPTION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": multipart_schema(
                    {
                        name: field
                        for name, field in TranscriptionForm.model_json_schema()["properties"].items()
                    },
                    required=("file", "model"),
                )
            }
        },
    }
}


@router.post(
    "/transcriptions",
    response_model=Transcript,
    openapi_extra=_TRANSCRIPTION_BODY,
    responses={
        **errors(*MODEL_ERRORS),
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
    },
)
async def transcriptions(request: Request, principal: CurrentUser, gateway: Gw) -> Response:
    form = await _form(request)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise bad_request(
                "send the audio as the multipart field 'file'", param="file", code="missing_file"
            )
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            parsed = TranscriptionForm.model_validate(fields)
        except ValidationError as exc:
            raise invalid(exc.errors()) from None
        data = await upload.read()
        filename = upload.filename
    finally:
        await form.close()  # removes the spooled temporary file
    settings = request.app.state.platform.settings
    decoded = await anyio.to_thread.run_sync(
        lambda: decode_upload(
            data, allowed=TRANSCRIPTION_FORMATS, max_seconds=settings.transcription_max_seconds
        )
    )
    result = await gateway.transcribe(
        parsed.model,
        TranscriptionRequest(
            file=data,
            filename=filename or f"audio.{decoded.format}",
            samples=decoded.samples,
            language=parsed.language,
            prompt=parsed.prompt,
            temperature=parsed.temperature,
        ),
        await metered_caller(request.app, principal),
    )
    return _transcription_response(result, parsed.response_format)


async def _form(request: Request) -> Any:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("send the audio as multipart/form-data with a 'file' field", code="invalid_body")
    try:
        return await request.form(max_files=1, max_fields=32)
    except Exception as exc:  # python-multipart's parse errors have no common base worth naming
        raise bad_request(f"the multipart body cannot be parsed: {exc}", code="invalid_body") from None


def _transcription_response(result: Transcription, fmt: str) -> Response:
    if fmt == "text":
        return Response(result.text + "\n", media_type="text/plain; charset=utf-8")
    if fmt in ("srt", "vtt"):
        return Response(_subtitles(result, fmt), media_type="text/plain; charset=utf-8")
    body: dict[str, Any] = {"text": result.text}
    if fmt == "verbose_json":
        body = {
            "task": "transcribe",
            "language": result.language,
            "duration": round(result.duration, 3),
            "text": result.text,
            "segments": result.segments,
        }
    return Response(orjson.dumps(body), media_type="application/json")


def _subtitles(result: Transcription, fmt: str) -> str:
    def stamp(seconds: float) -> str:
        ms = round(seconds * 1000)
        h, rest = divmod(ms, 3_600_000)
        m, rest = divmod(rest, 60_000)
        s, ms = divmod(rest, 1000)
        sep = "," if fmt == "srt" else "."
        return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"

    blocks = []
    for i, seg in enumerate(result.segments, start=1):
        timing = f"{stamp(seg['start'])} --> {stamp(seg['end'])}"
        text = str(seg["text"]).strip()
        blocks.append(f"{i}\n{timing}\n{text}\n" if fmt == "srt" else f"{timing}\n{text}\n")
    return ("WEBVTT\n\n" if fmt == "vtt" else "") + "\n".join(blocks)


_MEDIA_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "pcm": "audio/pcm",
}


@router.post(
    "/speech",
    response_class=Response,
    openapi_extra=json_body(SpeechBody),
    responses={
        **errors(*MODEL_ERRORS),
        200: {
            "description": "The audio, streamed as it is synthesized",
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}} for media in _MEDIA_TYPES.values()
            },
        },
    },
)
async def speech(request: Request, principal: CurrentUser, gateway: Gw) -> Response:
    _, parsed = await _parse(request, SpeechBody)
    voice = parsed.voice if isinstance(parsed.voice, str) else str(parsed.voice.get("id") or "default")
    stream = await gateway.speech(
        parsed.model,
        SpeechRequest(
            input=parsed.input, voice=voice, response_format=parsed.response_format, speed=parsed.speed
        ),
        await metered_caller(request.app, principal),
    )
    # Closed however the response ends: a client that hangs up stops the synthesis.
    return StreamResponse(
        stream,
        media_type=_MEDIA_TYPES[parsed.response_format],
        headers={"Cache-Control": "no-cache"},
        on_close=stream.aclose,
    )
