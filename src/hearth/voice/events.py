"""The voice event stream (seed 000): VoiceRequestReceived → TranscriptionStarted → TranscriptionCompleted →
RAGQueryExecuted (optional; here VoiceRAGQueryExecuted, as event type names are global and the RAG context
owns `RAGQueryExecuted`) → LLMInferenceStarted → LLMResponseGenerated → TTSSynthesisStarted →
AudioResponseReady; plus VoiceRequestFailed when a request ends in an error. Replies are streamed, so
TTSSynthesisStarted (the first sentence) comes before LLMResponseGenerated (the whole reply).

Each event keeps the time it happened; they are written to the outbox together with the request's rows."""

from __future__ import annotations

from typing import ClassVar

from hearth.events.schemas import Event


class _VoiceEvent(Event):
    context: ClassVar[str] = "voice"

    request_id: str
    user_id: str


class VoiceRequestReceived(_VoiceEvent):
    format: str
    duration_ms: int
    enable_rag: bool
    streaming: bool
    session_id: str | None = None


class TranscriptionStarted(_VoiceEvent):
    model: str


class TranscriptionCompleted(_VoiceEvent):
    text: str
    latency_ms: float


class VoiceRAGQueryExecuted(_VoiceEvent):
    collection: str | None
    docs_used: int
    latency_ms: float


class LLMInferenceStarted(_VoiceEvent):
    model: str


class LLMResponseGenerated(_VoiceEvent):
    model: str
    text: str
    latency_ms: float
    interrupted: bool = False


class TTSSynthesisStarted(_VoiceEvent):
    model: str
    voice: str


class AudioResponseReady(_VoiceEvent):
    response_id: str
    audio_format: str
    audio_ms: int
    latency_ms: float
    first_audio_ms: float | None
    interrupted: bool = False


class VoiceRequestFailed(_VoiceEvent):
    status: int
    error: str
