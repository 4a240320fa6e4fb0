"""Shared pieces of the agents tests: a scripted fake model (it answers classify, answer, judge and crew
prompts differently, as a real model would), a catalogue over it, and HTTP helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from tests.harness import RunningHearth, rag_config


def agents_config(chat_url: str) -> dict[str, Any]:
    """rag_config plus `judge` on the same upstream as model `mj` (the script tells judge calls apart)."""
    config = rag_config(chat_url)
    config["aliases"]["judge"] = {"kind": "chat", "deployments": [{"backend": "up0", "model": "mj"}]}
    return config


def purpose(body: dict) -> str:
    """What a chat request asks for, from its system prompt (the way the script tells calls apart)."""
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    if body.get("model") == "mj":
        return "review" if "You are the reviewer" in system else "judge"
    if system.startswith("Classify the user's message"):
        return "classify"
    if system.startswith("Rewrite the user's question"):
        return "rewrite"
    if "You are the researcher" in system:
        return "plan"
    if "You are the writer" in system:
        return "write"
    return "answer"


@dataclass
class Script:
    """Answers per purpose: a string, a dict (delay/status), or a list consumed one per call (the last one
    repeats). Every call is recorded as (purpose, body)."""

    answers: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, dict]] = field(default_factory=list)

    def __call__(self, body: dict) -> str | dict | None:
        kind = purpose(body)
        self.calls.append((kind, body))
        answer = self.answers.get(kind)
        if isinstance(answer, list):
            return answer.pop(0) if len(answer) > 1 else answer[0]
        if callable(answer):
            return answer(body)
        return answer

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.calls if k == kind)

    def reset(self, **answers: Any) -> None:
        self.calls.clear()
        self.answers = dict(answers)


def run(hearth: RunningHearth, kind: str, body: dict, key: str | None = None) -> httpx.Response:
    return httpx.post(f"{hearth.url}/api/agents/{kind}", json=body, headers=hearth.headers(key), timeout=120)


def stream_events(hearth: RunningHearth, path: str, body: dict | None = None) -> list[dict]:
    events = []
    with httpx.stream(
        "POST" if body is not None else "GET",
        f"{hearth.url}{path}",
        json=body,
        headers=hearth.headers(),
        timeout=120,
    ) as response:
        assert response.status_code in (200, 201), response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(orjson.loads(line[6:]))
    return events


def ingest(hearth: RunningHearth, collection: str, title: str, text: str) -> None:
    httpx.post(f"{hearth.url}/api/rag/collections", json={"name": collection}, headers=hearth.headers())
    r = httpx.post(
        f"{hearth.url}/api/rag/collections/{collection}/documents",
        json={"title": title, "text": text},
        headers=hearth.headers(),
        timeout=60,
    )
    assert r.status_code in (200, 202), r.text


def user_key(hearth: RunningHearth, name: str) -> str:
    created = httpx.post(f"{hearth.url}/api/admin/users", json={"username": name}, headers=hearth.headers())
    assert created.status_code == 201, created.text
    made = httpx.post(
        f"{hearth.url}/api/admin/keys", json={"user": name, "name": "k"}, headers=hearth.headers()
    )
    assert made.status_code == 201, made.text
    return made.json()["key"]


def nodes(run: dict) -> list[str]:
    return [s["node"] for s in run["steps"]]


Check = Callable[[dict], bool]
