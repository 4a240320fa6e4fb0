"""Model calls of agent nodes, through the gateway with aliases only: streamed so a node's tokens can be
relayed to the client as they come, timed, and counted (tokens, latency) for the step records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hearth.gateway.service import Caller, Gateway


class ModelFailed(Exception):
    """The model could not answer (upstream error or timeout): the node decides what to fall back to."""

    def __init__(self, message: str, elapsed_ms: float = 0.0) -> None:
        super().__init__(message)
        self.elapsed_ms = elapsed_ms


@dataclass
class Completion:
    text: str
    alias: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    error: str | None = None  # set when the call failed (text is then what arrived before it)
    extra: dict[str, Any] = field(default_factory=dict)

    def usage(self) -> dict[str, int]:
        return {"prompt": self.prompt_tokens, "completion": self.completion_tokens}


async def complete(
    gateway: Gateway,
    caller: Caller,
    *,
    alias: str,
    messages: list[dict[str, Any]],
    max_tokens: int,
    timeout: float,
    temperature: float | None = None,
    on_token: Callable[[str], None] | None = None,
) -> Completion:
    """The model's whole answer; `on_token` sees each piece as it streams. Raises ModelFailed on an upstream
    error or when `timeout` seconds pass (the stream is closed: the model stops)."""
    started = time.perf_counter()
    body: dict[str, Any] = {
        "model": alias,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
    }
    if temperature is not None:
        body["temperature"] = temperature
    parts: list[str] = []
    usage: tuple[int, int] | None = None
    pieces = 0
    stream = None
    try:
        async with asyncio.timeout(timeout):
            stream = await gateway.chat_stream(body, caller)
            async for chunk in stream:
                if "error" in chunk:
                    message = (chunk["error"] or {}).get("message") or "upstream error"
                    raise ModelFailed(f"{alias}: {message}")
                if chunk.get("usage"):
                    u = chunk["usage"]
                    usage = (int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
                for choice in chunk.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        parts.append(text)
                        pieces += 1
                        if on_token is not None:
                            on_token(text)
    except TimeoutError:
        raise ModelFailed(f"{alias}: no complete answer within {timeout:g} s", _ms(started)) from None
    except ModelFailed as exc:
        exc.elapsed_ms = _ms(started)
        raise
    except Exception as exc:  # routing errors (HearthError: 404/503/502…) and transport failures
        raise ModelFailed(f"{alias}: {getattr(exc, 'message', None) or exc}", _ms(started)) from exc
    finally:
        if stream is not None:
            await stream.aclose()
    prompt, completion = usage if usage is not None else (0, pieces)
    return Completion(
        text="".join(parts),
        alias=alias,
        prompt_tokens=prompt,
        completion_tokens=completion,
        latency_ms=_ms(started),
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
