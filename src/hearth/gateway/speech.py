"""A routed speech stream: relays audio chunks and frees its deployment slot exactly once however it ends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import anyio

from hearth.gateway.backends.base import BackendError
from hearth.gateway.deployment import Deployment

# (status, seconds to the first byte or None) → accounting
Finish = Callable[[int, float | None], None]


class SpeechStream:
    def __init__(
        self,
        deployment: Deployment,
        release: Callable[[], None],
        upstream: AsyncIterator[bytes],
        first: bytes | None,
        started: float,
        on_finish: Finish,
    ) -> None:
        self.deployment = deployment
        self._release = release
        self._upstream = upstream
        self._first = first
        self._started = started
        self._on_finish = on_finish
        self.ttfb = time.perf_counter() - started if first is not None else None
        self._completed = False
        self._finished = False
        self._chunks = self._relay()

    def __aiter__(self) -> SpeechStream:
        return self

    async def __anext__(self) -> bytes:
        return await anext(self._chunks)

    async def read(self) -> bytes:
        """The whole audio."""
        try:
            return b"".join([chunk async for chunk in self])
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self._chunks.aclose()
        await self._finish()

    async def _relay(self) -> AsyncIterator[bytes]:
        try:
            chunk = self._first
            while chunk is not None:
                yield chunk
                chunk = await anext(self._upstream, None)
            self._completed = True
        except BackendError as exc:
            # Audio already went out: no fallback now; the truncated stream is the client's signal.
            self.deployment.record_failure(exc.message)
            raise
        finally:
            await self._finish()

    async def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._release()
        with anyio.CancelScope(shield=True):
            await self._upstream.aclose()  # stops synthesis (embedded) or drops the connection (remote)
        self._on_finish(200 if self._completed else 499, self.ttfb)
