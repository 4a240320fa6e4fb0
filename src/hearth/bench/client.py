"""Streaming requests to an OpenAI-compatible endpoint, timed as GuideLLM times them.

aiohttp keeps one pooled session for the whole run (no connection cap), and each server-sent event is parsed
with orjson; the clock is read when a network read that carries text arrives, so TTFT and ITL are the
client's view, as a user would see them.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson

from hearth.bench.schemas import BenchConfig, RequestRecord
from hearth.platform.errors import bad_request


class OpenAIStreamClient:
    """Sends one streaming chat (or text) completion per call and returns its timings."""

    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        path = "/chat/completions" if config.endpoint_kind == "chat" else "/completions"
        self.url = config.base_url + path
        self.headers = {"Content-Type": "application/json"}
        if config.api_key:
            self.headers["Authorization"] = f"Bearer {config.api_key}"
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> OpenAIStreamClient:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=self.config.request_timeout),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def preflight(self) -> None:
        """Fail early, with a clear message, when the endpoint cannot be reached or refuses the key."""
        assert self.session is not None
        try:
            async with self.session.get(
                self.config.base_url + "/models",
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=10),
            ) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise bad_request(f"cannot reach {self.config.base_url}: {exc or type(exc).__name__}") from None
        if status in (401, 403):
            raise bad_request(f"{self.config.base_url} refused the API key (HTTP {status}); pass --api-key")

    def body(self, prompt: str) -> bytes:
        c = self.config
        payload: dict[str, Any] = {
            "model": c.model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": c.output_tokens,
        }
        if c.endpoint_kind == "chat":
            payload["messages"] = [{"role": "user", "content": prompt}]
            payload["max_completion_tokens"] = c.output_tokens
        else:
            payload["prompt"] = prompt
        if c.ignore_eos:
            payload["ignore_eos"] = True  # vLLM, SGLang, TGI honour it; others ignore unknown fields
        return orjson.dumps(payload)

    async def send(self, index: int, prompt: str, prompt_tokens: int) -> RequestRecord:
        """One request; errors are recorded on the record, never raised."""
        assert self.session is not None
        body = self.body(prompt)
        start = time.perf_counter()
        record = RequestRecord(index=index, start=start, end=start, prompt_tokens=prompt_tokens)
        usage: dict[str, Any] | None = None
        first: float | None = None
        last: float | None = None
        iterations = 0
        try:
            async with self.session.post(self.url, data=body, headers=self.headers) as response:
                if response.status != 200:
                    text = await response.text()
                    record.status = "errored"
                    record.error = f"HTTP {response.status}: {_message(text)}"
                else:
                    # Whole network reads, split into lines here: cheaper than one await per SSE line.
                    pending = b""
                    done = False
                    async for data in response.content.iter_any():
                        now = time.perf_counter()
                        lines = (pending + data).split(b"\n")
                        pending = lines.pop()
                        for line in lines:
                            if not line.startswith(b"data:"):
                                continue
                            payload = line[5:].strip()
                            if payload == b"[DONE]":
                                done = True
                                break
                            chunk = orjson.loads(payload)
                            if chunk.get("error"):
                                raise RuntimeError(_message(orjson.dumps(chunk).decode()))
                            if chunk.get("usage"):
                                usage = chunk["usage"]
                            if _has_text(chunk):
                                if first is None:
                                    first = now
                                last = now
                                iterations += 1
                        if done:
                            break
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError, RuntimeError) as exc:
            record.status = "errored"
            record.error = f"{type(exc).__name__}: {exc}"[:200]
        record.end = time.perf_counter()
        record.first_token, record.last_token, record.iterations = first, last, iterations
        if record.status == "successful":
            # As GuideLLM: the server's usage when it reports one, else one token per streamed chunk.
            record.output_tokens = int((usage or {}).get("completion_tokens") or iterations)
            if usage and usage.get("prompt_tokens"):
                record.prompt_tokens = int(usage["prompt_tokens"])
            if first is None:
                record.status = "errored"
                record.error = "the stream carried no tokens"
        return record


def _has_text(chunk: dict[str, Any]) -> bool:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta")
        if delta is not None:
            if delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning"):
                return True
        elif choice.get("text"):
            return True
    return False


def _message(text: str) -> str:
    try:
        return str(orjson.loads(text)["error"]["message"])[:200]
    except Exception:
        return text[:200]
