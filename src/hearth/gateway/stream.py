"""A routed chat stream: relays chunks, and frees its deployment slot exactly once however it ends —
finished, failed, abandoned by the client midway, or dropped before the first chunk was ever read."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from hearth.gateway.backends.base import BackendError
from hearth.gateway.deployment import Deployment
from hearth.gateway.loops import LoopDetector
from hearth.gateway.router import Served

log = logging.getLogger("hearth.gateway")
_LOOP_STOP = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop", "stop_reason": "repetition"}

# (status, ttft seconds or None, prompt tokens, completion tokens) → accounting
Finish = Callable[[int, float | None, int, int], None]


class ChatStream:
    def __init__(
        self,
        deployment: Deployment,
        release: Callable[[], None],
        upstream: AsyncIterator[dict[str, Any]],
        first: dict[str, Any] | None,
        started: float,
        on_finish: Finish,
        *,
        model: str | None = None,
        served: Served | None = None,
        watch_loops: bool = False,
    ) -> None:
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
        self._chunks = self._relay()

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await anext(self._chunks)

    async def aclose(self) -> None:
        await self._chunks.aclose()
        await self._finish()  # the relay may never have started: free the slot here too

    async def _relay(self) -> AsyncIterator[dict[str, Any]]:
        try:
            chunk = self._first
            while chunk is not None:
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
                    yield chunk
                if self._loops is not None and self._looping(chunk):
                    # The upstream repeats itself: end the reply here (closing the upstream stops it).
                    log.warning("looping reply stopped", extra={"deployment": self.deployment.key})
                    yield {**chunk, "choices": [_LOOP_STOP]}
                    self._completed = True
                    return
                chunk = await anext(self._upstream, None)
            self._completed = True
        except BackendError as exc:
            # Chunks already reached the client, so there is no fallback now: end the stream with an error.
            self.deployment.record_failure(exc.message)
            yield {
                "error": {
                    "message": exc.message,
                    "type": "upstream_error",
                    "param": None,
                    "code": "upstream_stream_error",
                }
            }
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
            await self._upstream.aclose()  # stops generation (embedded) or drops the connection (remote)
        status = 200 if self._completed else 499  # 499: the client closed the request (nginx's convention)
        self._on_finish(status, self._ttft, *self._tokens)
