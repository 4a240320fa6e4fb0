"""The Gateway object as the other contexts use it in-process (no HTTP in front), over a real upstream."""

from __future__ import annotations

import asyncio

import pytest

from hearth.config import ModelsConfig
from hearth.gateway.service import Caller, Gateway
from hearth.platform.errors import HearthError
from tests.fake_openai import FakeOpenAI
from tests.harness import remote_config
from tests.helpers import wait_for

BODY = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}


@pytest.fixture
async def setup():
    upstream = FakeOpenAI().start()
    upstream.behaviour.stream_chunks = 50
    upstream.behaviour.chunk_delay = 0.02
    config = remote_config((upstream.url, {}), max_concurrency=1)
    config.pop("include_defaults")
    gateway = Gateway(ModelsConfig.model_validate(config))
    await gateway.start()
    yield gateway, upstream
    await gateway.close()
    upstream.stop()


def slots(gateway: Gateway) -> tuple[int, int]:
    ((queued, running),) = gateway.slot_usage().values()
    return queued, running


async def test_a_stream_dropped_before_its_first_read_frees_its_slot(setup):
    gateway, upstream = setup
    stream = await gateway.chat_stream(BODY)
    assert slots(gateway) == (0, 1) and upstream.stats.active_streams == 1
    await stream.aclose()  # e.g. the client hung up before the response started
    assert slots(gateway) == (0, 0)
    await wait_for(lambda: upstream.stats.active_streams == 0, 5, what="upstream stream closed")
    assert upstream.stats.completed_streams == 0


async def test_a_finished_stream_frees_its_slot_and_counts_tokens(setup):
    gateway, upstream = setup
    upstream.behaviour.chunk_delay = 0
    charged: list[int] = []
    stream = await gateway.chat_stream(BODY, Caller(user_id="u", on_tokens=charged.append))
    text = "".join([c["choices"][0]["delta"].get("content") or "" async for c in stream if c["choices"]])
    assert text.startswith("tok0 tok1 ") and slots(gateway) == (0, 0)
    assert charged == [7 + 50]  # usage the upstream reported, though the caller did not ask for it


async def test_a_second_stream_waits_for_the_first(setup):
    gateway, _ = setup
    first = await gateway.chat_stream(BODY)
    second = asyncio.create_task(gateway.chat_stream(BODY))
    await wait_for(lambda: slots(gateway) == (1, 1), 5, what="second stream queued")
    assert not second.done()  # queued behind the first, not started
    await first.aclose()
    stream = await asyncio.wait_for(second, 5)
    await stream.aclose()
    assert slots(gateway) == (0, 0)


async def test_unknown_alias_and_wrong_kind(setup):
    gateway, _ = setup
    with pytest.raises(HearthError) as err:
        await gateway.embed("chat", ["x"])
    assert err.value.status == 400
    with pytest.raises(HearthError) as err:
        await gateway.chat({**BODY, "model": "nope", "stream": False})
    assert err.value.status == 404


async def test_aliases_added_and_removed_at_run_time(setup):
    """The AliasRegistry port (the planner's deploy uses it): a new alias routes to its server at once, a
    taken name is refused, and a removed alias is unknown and its own backend closed; others keep working."""
    gateway, upstream = setup
    other = FakeOpenAI().start()
    try:
        await gateway.add_alias("deployed", base_url=other.url, model="m-deployed", description="by a test")
        assert gateway.has_alias("deployed") and gateway.aliases["deployed"].description == "by a test"
        body = {"model": "deployed", "messages": [{"role": "user", "content": "hi"}]}
        await gateway.chat(body)
        assert [b["model"] for b in other.stats.bodies] == ["m-deployed"] and upstream.stats.requests == 0

        with pytest.raises(ValueError, match="'deployed' already exists"):
            await gateway.add_alias("deployed", base_url=other.url, model="m2")

        (backend,) = [d.backend for group in gateway.aliases["deployed"].groups for d in group]
        await gateway.remove_alias("deployed")
        assert not gateway.has_alias("deployed") and backend not in gateway.backends.values()
        with pytest.raises(HearthError) as refused:
            await gateway.chat(body)
        assert refused.value.status == 404
        await gateway.remove_alias("deployed")  # removing again is a no-op
        stream = await gateway.chat_stream(BODY)  # the configured alias is untouched
        await stream.aclose()
    finally:
        other.stop()
