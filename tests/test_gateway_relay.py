"""The streaming relay reads the upstream's bytes as they come and splits them into SSE lines itself, relaying
the chunks of one read in one write (issue 19). What a client sees must not depend on how the upstream's
bytes were cut: several frames in one write, a frame split across writes, an error event right behind
content, the usage chunk with [DONE]."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.harness import remote_config, run_hearth

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def frame(payload: dict | bytes) -> bytes:
    return b"data: " + (payload if isinstance(payload, bytes) else orjson.dumps(payload)) + b"\n\n"


def chunk(content: str | None = None, *, finish: str | None = None, role: str | None = None) -> dict:
    delta = {k: v for k, v in (("role", role), ("content", content)) if v is not None}
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "upstream-name",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


USAGE = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "upstream-name", "choices": [],
         "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}  # fmt: skip
ERROR = {"error": {"message": "the model crashed", "type": "server_error"}}


class ScriptedUpstream:
    """A real HTTP server on loopback answering every chat request with `script`: a list of byte strings,
    each sent as one TCP write 30 ms after the previous one (HTTP chunk boundaries are in the bytes)."""

    def __init__(self) -> None:
        self.script: list[bytes] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.lower().split(b"\r\n")
            length = int(next(line for line in lines if line.startswith(b"content-length")).split(b":")[1])
            await reader.readexactly(length)
            for piece in self.script:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.03)
            writer.close()

        async def boot() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()

        threading.Thread(target=lambda: (self.loop.run_until_complete(boot()), self.loop.run_forever()),
                         daemon=True).start()  # fmt: skip
        ready.wait(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture(scope="module")
def relay(tmp_path_factory) -> Iterator[tuple[ScriptedUpstream, object]]:
    upstream = ScriptedUpstream()
    with run_hearth(
        tmp_path_factory.mktemp("relay"), remote_config((upstream.url, {}), alias="bot")
    ) as hearth:
        yield upstream, hearth
    upstream.loop.call_soon_threadsafe(upstream.loop.stop)


def stream(hearth, **extra) -> list[dict | str]:
    body = {"model": "bot", "messages": [{"role": "user", "content": "hi"}], "stream": True, **extra}
    events: list[dict | str] = []
    with httpx.stream("POST", f"{hearth.v1}/chat/completions", json=body, headers=hearth.headers()) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:] if line == "data: [DONE]" else orjson.loads(line[6:]))
    return events


def contents(events: list) -> list[str]:
    return [
        e["choices"][0]["delta"].get("content") for e in events if isinstance(e, dict) and e.get("choices")
    ]


def test_frames_cut_anyhow_reach_the_client_whole_in_order_with_the_alias(relay) -> None:
    upstream, hearth = relay
    split = frame(chunk("c"))
    upstream.script = [
        # Three frames in one HTTP chunk, then two HTTP chunks in one write.
        HEAD + http_chunk(frame(chunk("", role="assistant")) + frame(chunk("a")) + frame(chunk("b"))),
        http_chunk(split[:20]),  # a frame cut in the middle of its JSON...
        http_chunk(split[20:]) + http_chunk(frame(chunk("d")) + frame(chunk(finish="stop"))),  # ...completed
        http_chunk(frame(USAGE) + frame(b"[DONE]")) + b"0\r\n\r\n",
    ]
    events = stream(hearth)
    assert contents(events) == ["", "a", "b", "c", "d", None]
    assert {e["model"] for e in events if isinstance(e, dict)} == {"bot"}
    assert events[-1] == "[DONE]" and not any(isinstance(e, dict) and e.get("usage") for e in events)
    # Asked for, the usage chunk (read with [DONE]) is relayed too.
    with_usage = stream(hearth, stream_options={"include_usage": True})
    assert with_usage[-2]["usage"]["completion_tokens"] == 3 and with_usage[-2]["model"] == "bot"


def test_an_error_event_behind_content_in_the_same_read_ends_the_stream_after_that_content(relay) -> None:
    upstream, hearth = relay
    upstream.script = [
        HEAD + http_chunk(frame(chunk("", role="assistant"))),
        http_chunk(frame(chunk("half")) + frame(chunk(" a reply")) + frame(ERROR)),
        b"0\r\n\r\n",
    ]
    events = stream(hearth)
    assert contents(events) == ["", "half", " a reply"]
    error = next(e for e in events if isinstance(e, dict) and "error" in e)
    assert (
        error["error"]["code"] == "upstream_stream_error" and "the model crashed" in error["error"]["message"]
    )


def test_a_last_line_without_its_newline_is_not_lost(relay) -> None:
    upstream, hearth = relay
    upstream.script = [
        HEAD + http_chunk(frame(chunk("", role="assistant")) + frame(chunk("x"))),
        http_chunk(b"data: " + orjson.dumps(chunk(finish="stop"))) + b"0\r\n\r\n",  # no "\n\n", then EOF
    ]
    events = stream(hearth)
    assert contents(events) == ["", "x", None] and events[-1] == "[DONE]"
