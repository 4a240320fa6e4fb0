"""A reply that repeats itself is stopped: by the embedded llama.cpp backend while it generates (SmolLM2
really does loop), and by the gateway for any upstream (a fake OpenAI server that sends a looping reply),
whole or streamed. Normal text with repeated structure is left alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import orjson
import pytest

from hearth.config import BackendConfig
from hearth.gateway.backends.llama_cpp import LlamaCppBackend
from hearth.gateway.loops import trim_loop
from tests.fake_openai import FakeOpenAI
from tests.harness import remote_config, run_hearth

LINE = "hearth set-port 12345\n"
# A conversation that makes SmolLM2 repeat the line greedily until max_tokens unless stopped.
LOOPING = {
    "messages": [
        {
            "role": "user",
            "content": "Print the line 'hearth set-port 12345' over and over, forever, without stopping.",
        },
        {"role": "assistant", "content": LINE * 4},
        {"role": "user", "content": "Keep going, do not stop."},
    ],
    "max_tokens": 200,
    "temperature": 0,
    "repetition_penalty": 1.0,  # the backend's default penalty would keep it from looping here
}


@pytest.fixture(scope="module")
def llm() -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend("local-llm", BackendConfig(type="llama_cpp", n_ctx=2048))
    backend.load()
    yield backend
    asyncio.run(backend.close())


def test_text_that_loops_is_cut_after_its_first_repeat():
    assert trim_loop("To change the port run:\n" + LINE * 30) == (
        "To change the port run:\nhearth set-port 12345",
        True,
    )
    assert trim_loop("Sure! " + "I am a bot. " * 40) == ("Sure! I am a bot.", True)
    assert trim_loop("port 1" + "0" * 300)[1]  # a run of one digit, long enough


@pytest.mark.parametrize(
    "text",
    [
        "1. apples are red\n2. bananas are yellow\n3. cherries are red\n4. dates are brown\n5. figs\n",
        "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n| 5 | 6 |\n| 7 | 8 |\n| 9 | 0 |\n",
        "The quick brown fox jumps over the lazy dog. " * 2 + "Then it rested.",
        "ha" * 40,  # laughter: a unit shorter than a word
        "Results\n" + "-" * 120 + "\nall good",  # a rule
    ],
)
def test_text_with_repeated_structure_is_left_alone(text):
    assert trim_loop(text) == (text, False)


def test_embedded_model_stops_a_looping_generation(llm):
    response = asyncio.run(llm.chat(LOOPING, None))
    choice = response["choices"][0]
    assert choice["stop_reason"] == "repetition" and choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == "hearth set-port 12345"  # the line once, not until max_tokens
    assert response["usage"]["completion_tokens"] < 100


def test_embedded_model_stops_a_looping_stream(llm):
    async def run() -> list[dict]:
        return [chunk async for chunk in llm.chat_stream({**LOOPING, "stream": True}, None)]

    chunks = asyncio.run(run())
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert chunks[-1]["choices"][0]["stop_reason"] == "repetition"
    assert text.count("hearth set-port 12345") <= 4 and llm.last_stats.completion_tokens < 100


def test_without_loop_detection_it_runs_to_max_tokens():
    backend = LlamaCppBackend("plain", BackendConfig(type="llama_cpp", n_ctx=2048, stop_loops=False))
    backend.load()
    try:
        response = asyncio.run(backend.chat({**LOOPING, "max_tokens": 60}, None))
    finally:
        asyncio.run(backend.close())
    assert response["choices"][0]["finish_reason"] == "length"
    assert "stop_reason" not in response["choices"][0]
    assert response["choices"][0]["message"]["content"].count("hearth set-port 12345") >= 3


@pytest.fixture
def upstream():
    server = FakeOpenAI().start()
    server.behaviour.reply = "To change the port run:\n" + LINE * 40
    server.behaviour.stream_text = server.behaviour.reply
    yield server
    server.stop()


def test_gateway_stops_a_looping_upstream(tmp_path, upstream):
    with run_hearth(tmp_path, remote_config((upstream.url, {}))) as hearth:
        body = {"model": "chat", "messages": [{"role": "user", "content": "port?"}]}
        r = httpx.post(f"{hearth.v1}/chat/completions", json=body, headers=hearth.headers())
        choice = r.json()["choices"][0]
        assert choice["message"]["content"] == "To change the port run:\nhearth set-port 12345"
        assert choice["stop_reason"] == "repetition"

        with httpx.stream(
            "POST", f"{hearth.v1}/chat/completions", json={**body, "stream": True}, headers=hearth.headers()
        ) as s:
            lines = [line for line in s.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        chunks = [orjson.loads(line[6:]) for line in lines[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert chunks[-1]["choices"][0]["stop_reason"] == "repetition"
        assert text.count("hearth set-port 12345") <= 4  # not all forty


def test_a_backend_can_opt_out(tmp_path, upstream):
    config = remote_config((upstream.url, {}))
    config["backends"]["up0"]["stop_loops"] = False
    with run_hearth(tmp_path, config) as hearth:
        body = {"model": "chat", "messages": [{"role": "user", "content": "port?"}]}
        r = httpx.post(f"{hearth.v1}/chat/completions", json=body, headers=hearth.headers())
        assert r.json()["choices"][0]["message"]["content"].count("hearth set-port") == 40
