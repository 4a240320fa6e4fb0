"""A bench client that drives a Hearth alias through the gateway in this process, for the web UI's runs of
an alias: the same `preflight`/`send` as `OpenAIStreamClient`, timed the same way (GuideLLM's definitions,
the clock read when a chunk carrying text arrives), but without the HTTP hop, so no API key is needed and
the figures are the gateway's and the model's own (routing, slots, the backend), not the network's."""

from __future__ import annotations

import time
from typing import Any

from hearth.bench.client import _has_text
from hearth.bench.schemas import BenchConfig, RequestRecord
from hearth.gateway.backends.base import BackendError
from hearth.gateway.service import Caller, Gateway
from hearth.platform.errors import HearthError


class GatewayClient:
    def __init__(self, gateway: Gateway, caller: Caller, config: BenchConfig) -> None:
        self.gateway = gateway
        self.caller = caller
        self.config = config

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def preflight(self) -> None:
        """404 for an unknown alias, 400 for one that is not a chat alias: before any load is sent."""
        self.gateway.router.get(self.config.model, "chat")

    def body(self, prompt: str) -> dict[str, Any]:
        return {
            "model": self.config.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": self.config.output_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    async def send(self, index: int, prompt: str, prompt_tokens: int) -> RequestRecord:
        """One streamed completion; errors are recorded on the record, never raised."""
        start = time.perf_counter()
        record = RequestRecord(index=index, start=start, end=start, prompt_tokens=prompt_tokens)
        usage: dict[str, Any] | None = None
        first: float | None = None
        last: float | None = None
        iterations = 0
        try:
            stream = await self.gateway.chat_stream(self.body(prompt), self.caller)
            try:
                async for chunk in stream:
                    now = time.perf_counter()
                    if chunk.get("error"):
                        raise RuntimeError(str(chunk["error"].get("message"))[:200])
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    if _has_text(chunk):
                        first = first if first is not None else now
                        last = now
                        iterations += 1
            finally:
                await stream.aclose()  # frees the slot and stops the model, also when cancelled
        except (HearthError, BackendError, RuntimeError) as exc:
            record.status = "errored"
            message = getattr(exc, "message", None) or str(exc)
            record.error = f"{type(exc).__name__}: {message}"[:200]
        record.end = time.perf_counter()
        record.first_token, record.last_token, record.iterations = first, last, iterations
        if record.status == "successful":
            record.output_tokens = int((usage or {}).get("completion_tokens") or iterations)
            if usage and usage.get("prompt_tokens"):
                record.prompt_tokens = int(usage["prompt_tokens"])
            if first is None:
                record.status = "errored"
                record.error = "the stream carried no tokens"
        return record
