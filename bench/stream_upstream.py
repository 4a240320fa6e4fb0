"""A fake streaming OpenAI upstream for `bench/gateway.py --streams`, as cheap per chunk as Python allows, so
that at 1,000 streams x 50 chunks/s the harness is not what saturates the machine.

One timer ticks every `delay` seconds and writes the next pre-encoded chunk to every stream in flight: one
`transport.write` per stream per tick, no per-stream timer, no JSON encoding per chunk. A stream starts on the
tick after its request arrived (headers and the role chunk), sends one content chunk per tick, then the stop
chunk (with the usage chunk when asked for), `[DONE]` and the end of the chunked body on the next tick, so at
the source every gap between a stream's chunks is one tick. Connections are kept alive (a client sends its
next request on the same one). Anything but a streamed POST to /chat/completions is answered 404.

    python -m bench.stream_upstream PORT CHUNKS DELAY   # prints its base URL when listening
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
import uvloop

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


def _chunk(payload: dict | bytes) -> bytes:
    """One SSE frame as one HTTP/1.1 chunk."""
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    frame = b"data: " + data + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(frame), frame)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip() == b"content-length":
            return int(value)
    return 0


class Frames:
    """Every byte a stream sends, encoded once."""

    def __init__(self, chunks: int, model: str = "fake-model") -> None:
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

        def choice(delta: dict, finish: str | None = None) -> dict:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        self.first = HEAD + _chunk(choice({"role": "assistant", "content": ""}))
        self.content = [_chunk(choice({"content": f"tok{i} "})) for i in range(chunks)]
        usage = {"prompt_tokens": 7, "completion_tokens": chunks, "total_tokens": 7 + chunks}
        stop = _chunk(choice({}, "stop"))
        end = _chunk(b"[DONE]") + b"0\r\n\r\n"
        self.last = stop + end
        self.last_with_usage = stop + _chunk({**base, "choices": [], "usage": usage}) + end


class Stream:
    __slots__ = ("conn", "sent", "usage")

    def __init__(self, conn: Connection, usage: bool) -> None:
        self.conn = conn
        self.sent = -1  # content chunks sent; -1: not started (the head goes out on the next tick)
        self.usage = usage


class Connection(asyncio.Protocol):
    def __init__(self, server: Upstream) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.busy = False  # a response is being streamed: the next request waits in the buffer
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.next_request()

    def next_request(self) -> None:
        """Parse one request from the buffer (headers, then Content-Length bytes of body) when idle."""
        if self.busy or self.closed:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        length = _content_length(head)
        if len(self.buffer) < end + 4 + length:
            return
        body, self.buffer = self.buffer[end + 4 : end + 4 + length], self.buffer[end + 4 + length :]
        if not head.startswith(b"post ") or b"/chat/completions " not in head.split(b"\r\n", 1)[0]:
            self.transport.write(NOT_FOUND)  # type: ignore[union-attr]
            return self.next_request()
        request = orjson.loads(body)
        if not request.get("stream"):
            self.transport.write(NOT_FOUND)  # type: ignore[union-attr]
            return self.next_request()
        self.busy = True
        usage = bool((request.get("stream_options") or {}).get("include_usage"))
        self.server.waiting.append(Stream(self, usage))

    def finished(self) -> None:
        self.busy = False
        self.next_request()


class Upstream:
    def __init__(self, chunks: int, delay: float) -> None:
        self.frames = Frames(chunks)
        self.chunks = chunks
        self.delay = delay
        self.waiting: list[Stream] = []
        self.active: list[Stream] = []
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.ticks = 0

    def tick(self) -> None:
        # The next tick is set from the start, so a late tick does not push every later one back.
        self.ticks += 1
        self.loop.call_at(self.start + (self.ticks + 1) * self.delay, self.tick)
        frames, chunks = self.frames, self.chunks
        still: list[Stream] = []
        for stream in self.active:
            conn = stream.conn
            if conn.closed:
                continue
            if stream.sent < chunks:
                conn.transport.write(frames.content[stream.sent])  # type: ignore[union-attr]
                stream.sent += 1
                still.append(stream)
            else:
                conn.transport.write(frames.last_with_usage if stream.usage else frames.last)  # type: ignore[union-attr]
                conn.finished()
        for stream in self.waiting:
            if not stream.conn.closed:
                stream.conn.transport.write(frames.first)  # type: ignore[union-attr]
                stream.sent = 0
                still.append(stream)
        self.waiting = []
        self.active = still


async def serve(port: int, chunks: int, delay: float) -> None:
    loop = asyncio.get_running_loop()
    upstream = Upstream(chunks, delay)
    server = await loop.create_server(lambda: Connection(upstream), "127.0.0.1", port, backlog=4096)
    loop.call_at(upstream.start + delay, upstream.tick)
    print(f"http://127.0.0.1:{port}/v1", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
