"""Routing, retries, fallback, cooldown, priority and rate limits, over real HTTP: a real Hearth server in
front of real fake-OpenAI upstream servers on loopback."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import orjson

from hearth.auth.service import AuthService
from hearth.platform.db import Database
from tests.harness import free_port, remote_config, run_hearth
from tests.helpers import wait_for, wait_until

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def slots(gateway) -> tuple[int, int]:
    """(queued, running) of the only deployment."""
    (usage,) = gateway.slot_usage().values()
    return usage


def _key(
    hearth, *, username: str, priority: str = "standard", rpm: int | None = None, tpm: int | None = None
) -> str:
    async def make() -> str:
        db = Database(hearth.settings.resolved_database_url)
        try:
            auth = AuthService(db)
            user = await auth.create_user(username=username)
            _, key = await auth.create_key(user_id=user.id, priority=priority, rpm_limit=rpm, tpm_limit=tpm)
            return key
        finally:
            await db.close()

    return asyncio.run(make())


def test_proxies_chat_and_rewrites_model(tmp_path, upstreams):
    a, _ = upstreams
    with run_hearth(tmp_path, remote_config((a.url, {}))) as hearth:
        r = httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers())
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "hello from upstream"
        assert a.stats.bodies[-1]["model"] == "m0"  # the alias became the upstream's model name
        assert r.headers["x-request-id"]


def test_streaming_passes_chunks_and_usage_only_when_asked(tmp_path, upstreams):
    a, _ = upstreams
    a.behaviour.stream_chunks = 3
    with run_hearth(tmp_path, remote_config((a.url, {}))) as hearth:

        def stream(include_usage: bool) -> list[bytes]:
            body = {**CHAT, "stream": True, "stream_options": {"include_usage": include_usage}}
            with httpx.stream(
                "POST", f"{hearth.v1}/chat/completions", json=body, headers=hearth.headers()
            ) as r:
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/event-stream")
                return [line for line in r.iter_lines() if line]

        lines = stream(False)
        assert lines[-1] == "data: [DONE]"
        chunks = [orjson.loads(line[6:]) for line in lines[:-1]]
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert text == "tok0 tok1 tok2 "
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        assert not any("usage" in c for c in chunks)
        # Hearth asked the upstream for usage anyway, to count tokens.
        assert a.stats.bodies[-1]["stream_options"] == {"include_usage": True}

        with_usage = [orjson.loads(line[6:]) for line in stream(True)[:-1]]
        assert with_usage[-1]["choices"] == [] and with_usage[-1]["usage"]["completion_tokens"] == 3


def test_retries_then_falls_back_on_5xx(tmp_path, upstreams):
    a, b = upstreams
    a.behaviour.mode = "error500"
    config = remote_config(
        (a.url, {"priority": 0}), (b.url, {"priority": 1}), max_retries=2, failures_before_cooldown=10
    )
    with run_hearth(tmp_path, config) as hearth:
        r = httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers())
        assert r.status_code == 200
        assert a.stats.requests == 3  # the first try and two retries
        assert b.stats.requests == 1


def test_connection_refused_falls_back(tmp_path, upstreams):
    _, b = upstreams
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with run_hearth(
        tmp_path, remote_config((dead, {"priority": 0}), (b.url, {"priority": 1}), max_retries=0)
    ) as hearth:
        r = httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers())
        assert r.status_code == 200 and b.stats.requests == 1


def test_cooldown_skips_failing_deployment(tmp_path, upstreams):
    a, b = upstreams
    a.behaviour.mode = "error500"
    config = remote_config(
        (a.url, {"priority": 0}),
        (b.url, {"priority": 1}),
        max_retries=0,
        failures_before_cooldown=1,
        cooldown=60,
    )
    with run_hearth(tmp_path, config) as hearth:
        # The Prometheus registry is the process's: earlier tests in this process may have counted too.
        before = _cooldowns(hearth, "up0/m0")
        for _ in range(5):
            assert (
                httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers()).status_code
                == 200
            )
        assert a.stats.requests == 1  # tried once, then cooled down
        assert b.stats.requests == 5
        assert _cooldowns(hearth, "up0/m0") == before + 1


def _cooldowns(hearth, deployment: str) -> float:  # type: ignore[no-untyped-def]
    prefix = f'hearth_gateway_cooldowns_total{{deployment="{deployment}"}} '
    metrics = httpx.get(f"{hearth.url}/metrics").text
    return next((float(line[len(prefix) :]) for line in metrics.splitlines() if line.startswith(prefix)), 0.0)


def test_timeout_falls_back(tmp_path, upstreams):
    a, b = upstreams
    a.behaviour.mode = "hang"
    config = remote_config((a.url, {"priority": 0, "timeout": 0.5}), (b.url, {"priority": 1}), max_retries=0)
    with run_hearth(tmp_path, config) as hearth:
        r = httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers())
        # The hanging upstream was given up on (it would hold the request for an hour) and the next answered.
        assert r.status_code == 200 and a.stats.requests == 1 and b.stats.requests == 1


def test_429_is_retried_after_its_retry_after(tmp_path, upstreams):
    a, _ = upstreams
    a.behaviour.mode = "error429"
    a.behaviour.retry_after = "0.3"
    with run_hearth(
        tmp_path, remote_config((a.url, {}), max_retries=1, failures_before_cooldown=5)
    ) as hearth:
        started = time.monotonic()
        r = httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers())
        assert r.status_code == 503
        assert a.stats.requests == 2
        assert time.monotonic() - started >= 0.3
        error = r.json()["error"]
        assert error["code"] == "no_deployment_available" and "429" in error["message"]


def test_upstream_client_error_is_not_retried_or_fallen_back(tmp_path, upstreams):
    a, b = upstreams
    a.behaviour.mode = "error400"
    with run_hearth(tmp_path, remote_config((a.url, {"priority": 0}), (b.url, {"priority": 1}))) as hearth:
        r = httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers())
        assert r.status_code == 400
        assert "fake upstream 400" in r.json()["error"]["message"]
        assert a.stats.requests == 1 and b.stats.requests == 0


def test_all_deployments_down_is_503_in_error_shape(tmp_path, upstreams):
    a, b = upstreams
    a.behaviour.mode = b.behaviour.mode = "error500"
    with run_hearth(tmp_path, remote_config((a.url, {}), (b.url, {}), max_retries=0)) as hearth:
        r = httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers())
        assert r.status_code == 503
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        assert "up0/m0" in r.json()["error"]["message"] and "up1/m1" in r.json()["error"]["message"]


def test_least_busy_among_equal_priorities(tmp_path, upstreams):
    a, b = upstreams
    a.behaviour.delay = b.behaviour.delay = 0.4
    config = remote_config((a.url, {}), (b.url, {}), max_concurrency=1)
    with run_hearth(tmp_path, config) as hearth:

        async def two() -> None:
            async with httpx.AsyncClient(headers=hearth.headers(), timeout=10) as client:
                rs = await asyncio.gather(
                    *(client.post(f"{hearth.v1}/chat/completions", json=CHAT) for _ in range(2))
                )
                assert all(r.status_code == 200 for r in rs)

        asyncio.run(two())
        # The busy one was avoided: each upstream (one slot each) served one, in parallel, none queued.
        assert (a.stats.requests, b.stats.requests) == (1, 1)


def test_premium_requests_jump_the_queue(tmp_path, upstreams):
    a, _ = upstreams
    a.behaviour.delay = 0.25  # served one by one, a quarter second apart
    a.behaviour.hold = threading.Event()  # s0 keeps the slot until all four are placed
    with run_hearth(tmp_path, remote_config((a.url, {}), max_concurrency=1)) as hearth:
        standard = _key(hearth, username="std")
        premium = _key(hearth, username="prem", priority="premium")
        finished: list[str] = []
        gateway = hearth.app.state.platform.gateway

        async def call(client: httpx.AsyncClient, key: str, tag: str) -> None:
            r = await client.post(
                f"{hearth.v1}/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"}
            )
            assert r.status_code == 200
            finished.append(tag)

        async def scenario() -> None:
            async with httpx.AsyncClient(timeout=20) as client:
                calls = []
                # Each request is sent once the one before holds the slot or its place in the queue.
                for key, tag, usage in (
                    (standard, "s0", (0, 1)),  # takes the only slot
                    (standard, "s1", (1, 1)),  # queue: s1
                    (standard, "s2", (2, 1)),  # queue: s1, s2
                    (premium, "p", (3, 1)),  # arrives last, served first
                ):
                    calls.append(asyncio.create_task(call(client, key, tag)))
                    await wait_for(lambda u=usage: slots(gateway) == u, 5, what=f"{tag} placed")
                metrics = (await client.get(f"{hearth.url}/metrics")).text
                assert 'hearth_gateway_queue_depth{deployment="up0/m0"} 3.0' in metrics.splitlines()
                a.behaviour.hold.set()
                await asyncio.gather(*calls)

        asyncio.run(scenario())
        assert finished == ["s0", "p", "s1", "s2"]


def test_client_disconnect_mid_stream_frees_the_slot(tmp_path, upstreams):
    a, _ = upstreams
    a.behaviour.stream_chunks = 200
    a.behaviour.chunk_delay = 0.05
    with run_hearth(tmp_path, remote_config((a.url, {}), max_concurrency=1)) as hearth:
        body = {**CHAT, "stream": True}
        with httpx.stream("POST", f"{hearth.v1}/chat/completions", json=body, headers=hearth.headers()) as r:
            for line in r.iter_lines():
                if "tok1" in line:
                    break  # hang up after a couple of tokens
        wait_until(lambda: a.stats.active_streams == 0, 5, what="upstream stream closed")
        assert a.stats.completed_streams == 0  # the upstream stream was dropped, not finished
        [deployment] = hearth.app.state.platform.gateway.aliases["chat"].groups[0]
        wait_until(lambda: deployment.load == 0, 5, what="the deployment's only slot free")
        a.behaviour.stream_chunks = 2
        a.behaviour.chunk_delay = 0
        r = httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers(), timeout=10)
        assert r.status_code == 200


def test_per_key_request_rate_limit(tmp_path, upstreams):
    a, _ = upstreams
    with run_hearth(tmp_path, remote_config((a.url, {}))) as hearth:
        key = _key(hearth, username="limited", rpm=2)
        headers = {"Authorization": f"Bearer {key}"}
        codes = [
            httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=headers).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        r = httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=headers)
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60  # within the minute
        assert r.json()["error"]["type"] == "rate_limit_error"
        # Other keys are not affected.
        assert (
            httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=hearth.headers()).status_code
            == 200
        )
        assert a.stats.requests == 3


def test_per_key_token_rate_limit(tmp_path, upstreams):
    a, _ = upstreams  # every completion uses 11 tokens
    with run_hearth(tmp_path, remote_config((a.url, {}))) as hearth:
        key = _key(hearth, username="tokens", tpm=20)
        headers = {"Authorization": f"Bearer {key}"}
        codes = [
            httpx.post(f"{hearth.v1}/chat/completions", json=CHAT, headers=headers).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]


def test_remote_embeddings_and_rerank(tmp_path, upstreams):
    a, _ = upstreams
    config = {
        "include_defaults": False,
        "backends": {"up": {"type": "openai", "base_url": a.url}},
        "aliases": {
            "embedder": {"kind": "embedding", "deployments": [{"backend": "up", "model": "e"}]},
            "reranker": {"kind": "rerank", "deployments": [{"backend": "up", "model": "r"}]},
        },
    }
    with run_hearth(tmp_path, config) as hearth:
        r = httpx.post(
            f"{hearth.v1}/embeddings",
            json={"model": "embedder", "input": ["ab", "abcd"]},
            headers=hearth.headers(),
        )
        assert r.status_code == 200
        assert [d["embedding"][0] for d in r.json()["data"]] == [2.0, 4.0]
        r = httpx.post(
            f"{hearth.v1}/rerank",
            headers=hearth.headers(),
            json={
                "model": "reranker",
                "query": "red apple",
                "documents": ["blue sky", "a red apple", "red car"],
                "top_n": 2,
            },
        )
        assert r.status_code == 200
        assert [x["index"] for x in r.json()["results"]] == [1, 2]
        # Using an alias of the wrong kind is a clear 400.
        r = httpx.post(
            f"{hearth.v1}/embeddings", json={"model": "reranker", "input": "x"}, headers=hearth.headers()
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_model_kind"


def test_streams_are_not_buffered(tmp_path, upstreams):
    a, _ = upstreams
    a.behaviour.stream_chunks = 4
    a.behaviour.chunk_delay = 0.3
    with run_hearth(tmp_path, remote_config((a.url, {}))) as hearth:
        arrivals: list[float] = []
        started = time.monotonic()
        with httpx.stream(
            "POST", f"{hearth.v1}/chat/completions", json={**CHAT, "stream": True}, headers=hearth.headers()
        ) as r:
            for line in r.iter_lines():
                if "tok" in line:
                    arrivals.append(time.monotonic() - started)
        assert len(arrivals) == 4
        # Unbuffered, the tokens arrive as the upstream sends them, 0.3 s apart: the first comes ~0.9 s before
        # the last (buffered, all at once). A gap, not a deadline: a loaded machine delays them all alike.
        assert arrivals[-1] - arrivals[0] > 0.6
