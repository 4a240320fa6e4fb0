"""The voice API's shapes: seed 000's VoiceRequest (JSON body) and VoiceResponse, plus stored history."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hearth.platform.kit.schemas import ORMModel
from hearth.platform.kit.time import UtcTimestamp


class VoiceRequestBody(BaseModel):
    """POST /api/voice as JSON (seed 000's VoiceRequest); multipart with a `file` field works too."""

    model_config = ConfigDict(extra="forbid")

    audio_b64: str = Field(min_length=1, json_schema_extra={"format": "byte"})  # base64
    format: Literal["wav", "webm", "mp3"] | None = None  # checked against the real container when given
    language: str | None = Field(default=None, max_length=16)
    enable_rag: bool | None = None  # None: the user's preference
    collection: str | None = Field(default=None, max_length=128)
    model: str | None = Field(default=None, max_length=128)
    voice: str | None = Field(default=None, max_length=128)
    audio_format: Literal["wav", "mp3", "opus"] = "wav"
    session_id: str | None = Field(default=None, max_length=64)
    premium: bool | None = None  # seed field; priority comes from the caller's key


class VoiceResponseOut(BaseModel):
    """Seed 000's VoiceResponse, with the latency of each stage in `latency` (milliseconds)."""

    id: str
    request_id: str
    session_id: str | None
    transcription: str
    response_text: str
    audio_b64: str
    audio_format: str
    audio_ms: int
    latency_ms: float
    latency: dict[str, float]
    rag_docs_used: int
    model: str
    interrupted: bool = False


class StoredResponse(ORMModel):
    id: str
    response_text: str
    model: str
    audio_format: str
    audio_ms: int
    audio_kept: bool
    latency_ms: float
    latency: dict[str, float]
    rag_docs_used: int
    interrupted: bool
    created_at: UtcTimestamp


class VoiceRequestOut(ORMModel):
    id: str
    session_id: str | None
    format: str
    duration_ms: int
    enable_rag: bool
    collection: str | None
    streaming: bool
    transcription: str
    audio_kept: bool
    created_at: UtcTimestamp
    response: StoredResponse | None


class StreamStart(BaseModel):
    """The WebSocket's first message of a turn (optional: defaults apply when audio comes first)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["start"]
    format: Literal["wav", "webm", "mp3"] | None = None
    language: str | None = Field(default=None, max_length=16)
    enable_rag: bool | None = None
    collection: str | None = Field(default=None, max_length=128)
    model: str | None = Field(default=None, max_length=128)
    voice: str | None = Field(default=None, max_length=128)
    audio_format: Literal["wav", "mp3", "opus"] = "wav"
