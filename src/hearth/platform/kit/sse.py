"""One server-sent-events response for every streaming route (and `StreamResponse`, its base, for streamed
bytes that are not SSE, e.g. audio).

However the response ends (the stream finished, raised, or the client hung up before the first frame), the
`on_close` callback runs, shielded from cancellation: it frees a deployment slot, stops the model, or stores
what was said."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import anyio
import orjson
from starlette.responses import StreamingResponse

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# Scope key: the ASGI send that platform.middleware.RequestContextMiddleware (the outermost of Hearth's own
# middlewares) was given. The middlewares inside it (Starlette's exception handling) only look at the
# response's start message, so a streamed body may skip them.
BODY_SEND = "hearth.body_send"


def frame(data: Any, *, event: str | None = None) -> bytes:
    """One SSE frame: `event: <name>` (when named) and `data: <json>` (or the bytes/str given as is)."""
    if isinstance(data, bytes):
        payload = data
    elif isinstance(data, str):
        payload = data.encode()
    else:
        payload = orjson.dumps(data)
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + payload + b"\n\n"


async def data_frames(items: AsyncIterator[Any], *, end: bytes | None = None) -> AsyncIterator[bytes]:
    """Unnamed frames of JSON items (OpenAI's stream shape), then `data: <end>` when given: one
    `orjson.dumps` and two concatenations per item. (/v1 chat streams use `ChatStream.sse`, which also joins
    the chunks of one upstream read into one write.)"""
    dumps = orjson.dumps
    async for item in items:
        yield b"data: " + dumps(item) + b"\n\n"
    if end is not None:
        yield b"data: " + end + b"\n\n"


async def named_frames(events: AsyncIterator[dict[str, Any]], key: str = "type") -> AsyncIterator[bytes]:
    """Frames named by each event's `key` field, carrying the whole event."""
    async for event in events:
        yield frame(event, event=event[key])


class StreamResponse(StreamingResponse):
    """Streamed bytes that run `on_close` (shielded) however the response ends."""

    def __init__(
        self,
        content: AsyncIterable[bytes],
        *,
        media_type: str,
        headers: Mapping[str, str] | None = None,
        on_close: Callable[[], Awaitable[Any]] | None = None,
        status_code: int = 200,
    ) -> None:
        self.on_close = on_close
        super().__init__(content, status_code=status_code, media_type=media_type, headers=headers)

    async def stream_response(self, send: Any) -> None:
        # The start goes through every middleware (status, headers, request id); the body frames go to the
        # send the outermost one of ours was given (`BODY_SEND`), skipping the wrappers in between, which
        # only watch for the start: four coroutine calls fewer per streamed chunk.
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        body_send = self._scope.get(BODY_SEND) or send  # read after the start, which may withdraw it
        async for chunk in self.body_iterator:
            if not isinstance(chunk, bytes | memoryview):
                chunk = chunk.encode(self.charset)
            await body_send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self._scope = scope
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.on_close is not None:
                with anyio.CancelScope(shield=True):
                    await self.on_close()


class SSEResponse(StreamResponse):
    def __init__(
        self,
        frames: AsyncIterator[bytes],
        *,
        on_close: Callable[[], Awaitable[Any]] | None = None,
        status_code: int = 200,
    ) -> None:
        super().__init__(
            frames,
            media_type="text/event-stream",
            headers=HEADERS,
            on_close=on_close,
            status_code=status_code,
        )
