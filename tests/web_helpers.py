"""Shared pieces of the web UI tests: a server whose `chat` alias is a scriptable fake upstream (fast and
deterministic) beside the embedded embedder, users with passwords, and signing in over HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.fake_openai import FakeOpenAI
from tests.harness import RunningHearth, run_hearth

PASSWORD = "correct horse battery"


def web_config(upstream: FakeOpenAI, *, embedded_chat: bool = False) -> dict[str, Any]:
    """Embedded models for everything (when `embedded_chat`, also for `chat`), plus a `scripted` chat alias on
    the fake upstream, whose streamed reply each test sets."""
    config: dict[str, Any] = {
        "backends": {"fake-up": {"type": "openai", "base_url": upstream.url}},
        "aliases": {"scripted": {"kind": "chat", "deployments": [{"backend": "fake-up", "model": "m0"}]}},
    }
    if not embedded_chat:
        config["aliases"]["chat"] = {"kind": "chat", "deployments": [{"backend": "fake-up", "model": "m0"}]}
    return config


@contextmanager
def web_server(
    tmp_path: Path, *, embedded_chat: bool = False, **settings: Any
) -> Iterator[tuple[RunningHearth, FakeOpenAI]]:
    upstream = FakeOpenAI().start()
    upstream.behaviour.reply = "Fake title"  # the non-streamed answer: conversation titles
    try:
        with run_hearth(tmp_path, web_config(upstream, embedded_chat=embedded_chat), **settings) as hearth:
            yield hearth, upstream
    finally:
        upstream.stop()


def add_user(hearth: RunningHearth, name: str, *, role: str = "user", password: str = PASSWORD) -> None:
    created = httpx.post(
        f"{hearth.url}/api/admin/users", json={"username": name, "role": role}, headers=hearth.headers()
    )
    assert created.status_code == 201, created.text
    put = httpx.put(
        f"{hearth.url}/api/admin/users/{name}/password", json={"password": password}, headers=hearth.headers()
    )
    assert put.status_code == 204, put.text


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF form field"
    return found.group(1)


def page_token(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]*)"', html)
    assert found, "the page has no CSRF meta tag"
    return found.group(1)


def sign_in(hearth: RunningHearth, name: str, password: str = PASSWORD) -> tuple[httpx.Client, str]:
    """A client signed in through the sign-in form, and its session's CSRF token."""
    client = httpx.Client(base_url=hearth.url)
    token = form_token(client.get("/login").text)
    done = client.post("/login", data={"csrf_token": token, "username": name, "password": password})
    assert done.status_code == 303, done.text
    return client, page_token(client.get("/chat").text)
