"""The same canned OpenAI answers as tests/fake_openai.py, served the way most real OpenAI-compatible servers
are (vLLM's and LocalAI's API layers, LiteLLM): an ASGI app under uvicorn. A second baseline for
bench/gateway.py, next to the raw-asyncio fake that is about as fast as a Python server gets."""

from __future__ import annotations

import sys
import time

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def chat(request: Request) -> Response:
    await request.body()
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello from upstream"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11},
    }
    return Response(orjson.dumps(body), media_type="application/json")


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
