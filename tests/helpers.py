"""Helpers shared by the tests: waits are conditions with deadlines, never fixed sleeps.

A negative assertion ("nothing else happened") waits for a positive condition that proves the system has
moved past the point where the unwanted thing would have happened (a later event delivered, a queue
reached, a counter advanced), then asserts."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import httpx
import nats
import pytest


async def wait_for(cond: Callable[[], bool], within: float = 10.0, what: str = "condition") -> None:
    """Poll `cond` on the running loop until it holds; AssertionError after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {within} s")
        await asyncio.sleep(0.02)


async def wait_for_async(
    cond: Callable[[], Awaitable[bool]], within: float = 10.0, what: str = "condition"
) -> None:
    """Like `wait_for`, for a condition that must await (a database read, a NATS request)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await cond():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {within} s")
        await asyncio.sleep(0.02)


def tool_missing(message: str) -> NoReturn:
    """A command-line tool a test needs is absent. `make test` installs every one, so in CI (CI=true) that
    is a failure; elsewhere a skip whose message says how to get it."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def wait_until(
    cond: Callable[[], Any], within: float = 10.0, what: str = "condition", every: float = 0.05
) -> Any:
    """Blocking poll for tests that drive a server over HTTP; returns the first truthy value of `cond`."""
    deadline = time.monotonic() + within
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within} s")
        time.sleep(every)


def wait_indexed(hearth: Any, collection: str, count: int, within: float = 120.0) -> list[dict]:
    """The collection's documents once `count` of them exist and each is indexed or failed."""

    def settled() -> list[dict] | None:
        docs = httpx.get(
            f"{hearth.url}/api/rag/collections/{collection}/documents", headers=hearth.headers()
        ).json()
        done = len(docs) >= count and all(d["status"] in ("indexed", "failed") for d in docs)
        return docs if done else None

    return wait_until(settled, within, what="ingestion", every=0.1)


async def read_stream(url: str, stream: str, *, expect: int, within: float = 15.0) -> list:
    """The first `expect` messages of a JetStream stream, once it holds that many."""
    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=2)
    try:
        js = nc.jetstream()

        async def enough() -> bool:
            try:
                return (await js.stream_info(stream)).state.messages >= expect
            except nats.js.errors.NotFoundError:
                return False

        await wait_for_async(enough, within, what=f"{expect} messages on {stream}")
        return [await js.get_msg(stream, seq) for seq in range(1, expect + 1)]
    finally:
        await nc.close()
