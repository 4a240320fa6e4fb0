"""The protocol every inference backend speaks, embedded or remote.

Requests and responses are OpenAI-shaped dicts so a remote backend can pass fields it does not know
(tools, response_format…) straight through, and an embedded one fills the same shapes itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


class BackendError(Exception):
    """A failure of one deployment. `retryable` errors (connect, 5xx, 429, timeout) lead to retry/fallback;
    the others (a 4xx from the upstream about the request itself) go back to the client as they are."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        retryable: bool = True,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.body = body  # the upstream's own error body, if it sent one


class RequestTooLarge(BackendError):
    """The prompt does not fit the model's context window: the client's fault, never retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400, retryable=False)


@dataclass
class EmbeddingResult:
    vectors: list[list[float]]
    prompt_tokens: int
    model: str
    served: Any = None  # gateway.router.Served, set by the gateway: which deployment answered


@dataclass
class RerankResult:
    scores: list[float]  # one per input document, in input order
    prompt_tokens: int
    model: str
    served: Any = None  # gateway.router.Served, set by the gateway


@runtime_checkable
class Backend(Protocol):
    """An engine. Each backend implements the calls its kind supports and raises BackendError otherwise."""

    name: str
    # The most requests the engine can run at once (1 for an embedded LLM); None means no limit of its own.
    max_concurrency: int | None

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class Warmable(Protocol):
    """A backend that loads its model lazily and can start loading it ahead of the first call."""

    def warm(self) -> None: ...


class ChatBackend(Backend, Protocol):
    async def chat(self, body: dict[str, Any], model: str | None) -> dict[str, Any]:
        """A whole `chat.completion` object."""
        ...

    def chat_stream(self, body: dict[str, Any], model: str | None) -> AsyncIterator[dict[str, Any]]:
        """`chat.completion.chunk` objects as they are produced; the last one carries `usage` when the body
        asks for it via stream_options.include_usage. Closing the iterator early must stop generation."""
        ...


class EmbeddingBackend(Backend, Protocol):
    async def embed(self, texts: list[str], model: str | None) -> EmbeddingResult: ...


class RerankBackend(Backend, Protocol):
    async def rerank(self, query: str, documents: list[str], model: str | None) -> RerankResult: ...


@dataclass
class Transcription:
    text: str
    language: str
    duration: float  # seconds of audio
    segments: list[dict[str, Any]]  # OpenAI verbose_json segments: id, start, end, text, …
    model: str


@dataclass
class TranscriptionRequest:
    file: bytes  # the upload as sent (remote backends forward it)
    filename: str
    samples: Any = None  # float32 mono 16 kHz, already decoded by the caller (embedded backends use it)
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0


@dataclass
class SpeechRequest:
    input: str
    voice: str
    response_format: str = "wav"  # wav | mp3 | opus | flac | pcm
    speed: float = 1.0


class TranscriptionBackend(Backend, Protocol):
    async def transcribe(self, request: TranscriptionRequest, model: str | None) -> Transcription: ...


class SpeechBackend(Backend, Protocol):
    def speech(self, request: SpeechRequest, model: str | None) -> AsyncIterator[bytes]:
        """The audio in `request.response_format`, in chunks as it is synthesized (sentence by sentence).
        Closing the iterator early must stop synthesis."""
        ...
