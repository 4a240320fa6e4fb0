"""A routed chat stream: relays chunks, and frees its deployment slot exactly once however it ends —
finished, failed, abandoned by the client midway, or dropped before the first chunk was ever read."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, TypeVar

import anyio
import orjson

from hearth.gateway.backends.base import BackendError
from hearth.gateway.deployment import Deployment
from hearth.gateway.loops import LoopDetector
from hearth.gateway.router import Served

log = logging.getLogger("hearth.gateway")
T = TypeVar("T")
_LOOP_STOP = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop", "stop_reason": "repetition"}

# (status, ttft seconds or None, prompt tokens, completion tokens) → accounting
Finish = Callable[[int, float | None, int, int], None]


class ChatStream:
    """Iterate it for the chunks as dicts, or take `sse()` for the relay's bytes: one write per batch of
    chunks that arrived together (the /v1 route's hot path). Only one of the two, once."""

    def __init__(
        self,
        deployment: Deployment,
        release: Callable[[], None],
        upstream: AsyncIterator[list[dict[str, Any]]],
        first: list[dict[str, Any]] | None,
        started: float,
        on_finish: Finish,
        *,
        model: str | None = None,
        served: Served | None = None,
        watch_loops: bool = False,
    ) -> None:
        """`upstream` yields lists of chunks (a backend's `chat_stream_batches`, or `one_by_one` of its
        `chat_stream`); `first` is the list routing read already."""
        self.deployment = deployment
        self._model = model  # the alias the client asked for: chunks carry it, not the upstream's name
        # Routing ends at the first chunk, so this names the deployment that produces the whole stream:
        # a failure after it ends the stream with an error event, never with another deployment's text.
        self.served = served or Served(deployment.key)
        self._release = release
        self._upstream = upstream
        self._first = first
        self._started = started
        self._on_finish = on_finish
        self._ttft: float | None = None
        self._tokens = (0, 0)
        self._completed = False
        self._finished = False
        self._loops = LoopDetector() if watch_loops else None
        self._batches = self._relay()
        self._chunks: AsyncIterator[dict[str, Any]] | None = None

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        if self._chunks is None:
            self._chunks = self._flat()
        return self._chunks  # iterated directly: no wrapper coroutine per chunk

    async def __anext__(self) -> dict[str, Any]:
        return await anext(self.__aiter__())

    async def _flat(self) -> AsyncIterator[dict[str, Any]]:
        async for batch in self._batches:
            for chunk in batch:
                yield chunk

    async def sse(self, end: bytes = b"[DONE]") -> AsyncIterator[bytes]:
        """The stream as server-sent events: `data: <chunk>` frames, each batch in one piece, then `end`."""
        dumps = orjson.dumps
        async for batch in self._batches:
            if len(batch) == 1:
                yield b"data: " + dumps(batch[0]) + b"\n\n"
            else:
                yield b"".join([b"data: " + dumps(chunk) + b"\n\n" for chunk in batch])
        yield b"data: " + end + b"\n\n"

    async def aclose(self) -> None:
        if self._chunks is not None:
            await self._chunks.aclose()  # type: ignore[attr-defined]
        await self._batches.aclose()
        await self._finish()  # the relay may never have started: free the slot here too

    async def _relay(self) -> AsyncGenerator[list[dict[str, Any]], None]:
        try:
            batch = self._first
            while batch is not None:
                out = []
                for chunk in batch:
                    usage = chunk.get("usage")
                    if usage:
                        self._tokens = (
                            int(usage.get("prompt_tokens") or 0),
                            int(usage.get("completion_tokens") or 0),
                        )
                    if self._ttft is None and chunk.get("choices"):
                        self._ttft = time.perf_counter() - self._started
                    if not chunk.pop("_usage_only", False):
                        if self._model is not None and "model" in chunk:
                            chunk["model"] = self._model
                        out.append(chunk)
                    if self._loops is not None and self._looping(chunk):
                        # The upstream repeats itself: end the reply here (closing the upstream stops it).
                        log.warning("looping reply stopped", extra={"deployment": self.deployment.key})
                        out.append({**chunk, "choices": [_LOOP_STOP]})
                        self._completed = True
                        yield out
                        return
                if out:
                    yield out
                batch = await anext(self._upstream, None)
            self._completed = True
        except BackendError as exc:
            # Chunks already reached the client, so there is no fallback now: end the stream with an error.
            self.deployment.record_failure(exc.message)
            yield [
                {
                    "error": {
                        "message": exc.message,
                        "type": "upstream_error",
                        "param": None,
                        "code": "upstream_stream_error",
                    }
                }
            ]
        finally:
            await self._finish()

    def _looping(self, chunk: dict[str, Any]) -> bool:
        loops = self._loops
        assert loops is not None
        for choice in chunk.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text and loops.feed(text):
                return True
        return False

    async def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._release()
        with anyio.CancelScope(shield=True):
            await self._upstream.aclose()  # type: ignore[attr-defined]  # stops generation or drops the connection
        status = 200 if self._completed else 499  # 499: the client closed the request (nginx's convention)
        self._on_finish(status, self._ttft, *self._tokens)


async def one_by_one(chunks: AsyncIterator[T]) -> AsyncGenerator[list[T], None]:
    """A backend's chunk stream as batches of one (backends that read no sockets: embedded engines). Closing
    this closes `chunks`."""
    try:
        async for chunk in chunks:
            yield [chunk]
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
