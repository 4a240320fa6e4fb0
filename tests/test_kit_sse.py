"""The kit's streamed responses: exact SSE bytes, and `on_close` runs however the response ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from hearth.platform.kit.sse import SSEResponse, StreamResponse, data_frames, named_frames

# ASGI 2.0: the server reports a client gone as an http.disconnect message.
SCOPE = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.0"}, "method": "GET", "headers": []}


async def _items(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def _collect(frames: AsyncIterator[bytes]) -> bytes:
    return b"".join([f async for f in frames])


async def test_data_frames_are_openai_stream_bytes() -> None:
    body = await _collect(data_frames(_items({"a": 1}, {"b": "é"}), end=b"[DONE]"))
    assert body == b'data: {"a":1}\n\ndata: {"b":"\xc3\xa9"}\n\ndata: [DONE]\n\n'
    assert await _collect(data_frames(_items({"a": 1}))) == b'data: {"a":1}\n\n'


async def test_named_frames_carry_the_event_name() -> None:
    body = await _collect(named_frames(_items({"type": "delta", "content": "hi"})))
    assert body == b'event: delta\ndata: {"type":"delta","content":"hi"}\n\n'


class _Closer:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> None:
        await anyio.lowlevel.checkpoint()  # a checkpoint: would raise if the close were not shielded
        self.calls += 1


async def _run(response: StreamResponse, *, disconnect: bool) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if disconnect:
            return {"type": "http.disconnect"}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await response(SCOPE, receive, send)
    return sent


async def test_sse_response_sends_the_frames_then_closes_once() -> None:
    closer = _Closer()
    response = SSEResponse(data_frames(_items({"n": 1}), end=b"[DONE]"), on_close=closer, status_code=201)
    sent = await _run(response, disconnect=False)
    assert sent[0]["status"] == 201
    assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b'data: {"n":1}\n\ndata: [DONE]\n\n'
    assert closer.calls == 1


async def test_on_close_runs_when_the_client_leaves_before_the_first_frame() -> None:
    async def never() -> AsyncIterator[bytes]:
        await anyio.sleep_forever()
        yield b""

    closer = _Closer()
    await _run(StreamResponse(never(), media_type="audio/wav", on_close=closer), disconnect=True)
    assert closer.calls == 1


async def test_on_close_runs_when_the_stream_raises() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        raise RuntimeError("upstream died")

    closer = _Closer()
    with pytest.raises(RuntimeError):
        await _run(SSEResponse(broken(), on_close=closer), disconnect=False)
    assert closer.calls == 1
