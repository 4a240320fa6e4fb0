"""A tiny, fast OpenAI-compatible upstream for routing tests and the gateway benchmark.

Raw asyncio + httptools (no framework) so it costs little per request and the benchmark measures Hearth,
not the fake. It runs on its own event loop in a thread, on 127.0.0.1. Behaviour is switchable at run time
(`mode`, `delay`, `stream_chunks`) and every request is counted, so tests can see retries and fallbacks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httptools
import orjson


@dataclass
class Behaviour:
    mode: str = "ok"  # ok | error500 | error429 | error400 | hang | reset
    delay: float = 0.0  # seconds before answering
    stream_chunks: int = 5
    chunk_delay: float = 0.0
    reply: str = "hello from upstream"
    stream_text: str | None = None  # when set, streams send this text in 8-character pieces (not tok0 tok1…)
    retry_after: str = "0"
    hold: threading.Event | None = None  # when given, every answer waits until it is set
    refuse_input: str | None = None  # embedding requests with an input containing this text get a 400
    # Scripted answers: called with each chat request's body; returns the text to answer with, or a dict
    # {"text": ..., "delay": seconds, "status": 500} (None: the behaviour above). Tests that need the model to
    # say different things to different prompts (classify, answer, judge) script it here.
    script: Callable[[dict], str | dict | None] | None = None


@dataclass
class Stats:
    requests: int = 0
    by_path: dict[str, int] = field(default_factory=dict)
    bodies: list[dict] = field(default_factory=list)
    active_streams: int = 0
    completed_streams: int = 0
    sent_pieces: int = 0


class _Protocol(asyncio.Protocol):
    def __init__(self, server: FakeOpenAI) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()  # type: ignore[union-attr]

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        path, body = self.url.decode(), bytes(self.body)
        self.url, self.body = b"", bytearray()
        asyncio.get_running_loop().create_task(self.server.handle(self.transport, path, body))


def _response(
    status: int, payload: bytes, content_type: bytes = b"application/json", extra: bytes = b""
) -> bytes:
    reason = {200: b"OK", 400: b"Bad Request", 429: b"Too Many Requests", 500: b"Internal Server Error"}
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s\r\n"
        % (status, reason.get(status, b"X"), content_type, len(payload), extra)
    ) + payload


class FakeOpenAI:
    def __init__(self, behaviour: Behaviour | None = None, *, model: str = "fake-model") -> None:
        self.behaviour = behaviour or Behaviour()
        self.stats = Stats()
        self.model = model
        self.keep_bodies = True
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeOpenAI:
        ready = threading.Event()

        def run() -> None:
            try:
                import uvloop

                self.loop = uvloop.new_event_loop()
            except ImportError:
                self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)

            async def boot() -> None:
                self._server = await self.loop.create_server(  # type: ignore[union-attr]
                    lambda: _Protocol(self), "127.0.0.1", port, reuse_address=True, backlog=1024
                )
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()

            self.loop.run_until_complete(boot())
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="fake-openai")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self.loop is None:
            return

        async def shutdown() -> None:
            self._server.close()  # type: ignore[union-attr]
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self.loop.stop()  # type: ignore[union-attr]

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        self._thread.join(5)  # type: ignore[union-attr]
        self.loop = None

    # -- requests ---------------------------------------------------------------------------------------

    async def handle(self, transport: asyncio.Transport, path: str, raw: bytes) -> None:
        b = self.behaviour
        self.stats.requests += 1
        self.stats.by_path[path] = self.stats.by_path.get(path, 0) + 1
        body = orjson.loads(raw) if raw else {}
        if self.keep_bodies:
            self.stats.bodies.append(body)
        if b.hold is not None:
            await asyncio.to_thread(b.hold.wait)
        if b.delay:
            await asyncio.sleep(b.delay)
        if b.mode == "hang":
            await asyncio.sleep(3600)
            return
        if b.mode == "reset":
            transport.abort()
            return
        if b.mode in ("error500", "error429", "error400"):
            status = int(b.mode[-3:])
            extra = b"retry-after: %s\r\n" % b.retry_after.encode() if status == 429 else b""
            err = {"error": {"message": f"fake upstream {status}", "type": "x", "param": None, "code": None}}
            transport.write(_response(status, orjson.dumps(err), extra=extra))
            return
        if path.endswith("/chat/completions") and b.script is not None:
            scripted = b.script(body)
            if scripted is not None:
                await self._scripted(transport, body, scripted)
                return
        if path.endswith("/chat/completions"):
            if body.get("stream"):
                await self._stream(transport, body)
            else:
                transport.write(_response(200, orjson.dumps(self._completion())))
        elif path.endswith("/embeddings"):
            inputs = body.get("input")
            inputs = [inputs] if isinstance(inputs, str) else inputs
            if b.refuse_input and any(b.refuse_input in t for t in inputs):
                err = {"error": {"message": "fake upstream refuses this input", "type": "x", "code": None}}
                transport.write(_response(400, orjson.dumps(err)))
                return
            data = [
                {"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0, 0.0]}
                for i, t in enumerate(inputs)
            ]
            transport.write(
                _response(
                    200,
                    orjson.dumps(
                        {
                            "object": "list",
                            "data": data,
                            "model": self.model,
                            "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
                        }
                    ),
                )
            )
        elif path.endswith("/rerank"):
            docs = body.get("documents", [])
            q = set(body.get("query", "").lower().split())
            results = [
                {"index": i, "relevance_score": len(q & set(d.lower().split())) / (1 + len(q))}
                for i, d in enumerate(docs)
            ]
            transport.write(_response(200, orjson.dumps({"results": results, "model": self.model})))
        else:
            transport.write(_response(404, b'{"error": {"message": "not found"}}'))

    async def _scripted(self, transport: asyncio.Transport, body: dict, scripted: str | dict) -> None:
        answer = {"text": scripted} if isinstance(scripted, str) else scripted
        if answer.get("delay"):
            await asyncio.sleep(answer["delay"])
        if answer.get("status"):
            status = int(answer["status"])
            err = {"error": {"message": f"fake upstream {status}", "type": "x", "param": None, "code": None}}
            transport.write(_response(status, orjson.dumps(err)))
            return
        text = answer.get("text", "")
        if not body.get("stream"):
            completion = self._completion()
            completion["choices"][0]["message"]["content"] = text
            transport.write(_response(200, orjson.dumps(completion)))
            return
        await self._stream(transport, body, text=text)

    def _completion(self) -> dict:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.behaviour.reply},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11},
        }

    async def _stream(self, transport: asyncio.Transport, body: dict, text: str | None = None) -> None:
        b = self.behaviour
        self.stats.active_streams += 1
        transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )

        def send(data: bytes) -> None:
            frame = b"data: " + data + b"\n\n"
            transport.write(b"%x\r\n%s\r\n" % (len(frame), frame))

        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
        }
        try:
            send(
                orjson.dumps(
                    {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                        ],
                    }
                )
            )
            stream_text = text if text is not None else b.stream_text
            pieces = (
                [stream_text[i : i + 8] for i in range(0, len(stream_text), 8)]
                if stream_text is not None
                else [f"tok{i} " for i in range(b.stream_chunks)]
            )
            for piece in pieces:
                if b.chunk_delay:
                    await asyncio.sleep(b.chunk_delay)
                if transport.is_closing():  # the client went away (while we slept)
                    return
                send(
                    orjson.dumps(
                        {
                            **base,
                            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                        }
                    )
                )
                self.stats.sent_pieces += 1
            send(orjson.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
            if (body.get("stream_options") or {}).get("include_usage"):
                send(
                    orjson.dumps(
                        {
                            **base,
                            "choices": [],
                            "usage": {
                                "prompt_tokens": 7,
                                "completion_tokens": b.stream_chunks,
                                "total_tokens": 7 + b.stream_chunks,
                            },
                        }
                    )
                )
            send(b"[DONE]")
            transport.write(b"0\r\n\r\n")
            self.stats.completed_streams += 1
        finally:
            self.stats.active_streams -= 1


if __name__ == "__main__":
    import sys

    server = FakeOpenAI().start(int(sys.argv[1]) if len(sys.argv) > 1 else 9100)
    print(server.url, flush=True)
    threading.Event().wait()
