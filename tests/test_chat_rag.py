"""Chat with RAG on: the real RAG service (embedded MiniLM embedder) retrieves from the user's collection,
the prompt carries the numbered context, and the sources are stored in the reply's metadata."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.fake_openai import FakeOpenAI
from tests.harness import rag_config, run_hearth
from tests.helpers import wait_until


@pytest.fixture(scope="module")
def hearth(tmp_path_factory):  # type: ignore[no-untyped-def]
    upstream = FakeOpenAI().start()
    upstream.behaviour.stream_chunks = 3
    config = rag_config(upstream.url)
    with run_hearth(tmp_path_factory.mktemp("chatrag"), config) as server:
        server.upstream = upstream  # type: ignore[attr-defined]
        yield server
    upstream.stop()


def _ingest(hearth, collection: str, title: str, text: str) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(
        f"{hearth.url}/api/rag/collections/{collection}/documents",
        json={"title": title, "text": text},
        headers=hearth.headers(),
        timeout=60,
    )
    assert r.status_code == 202, r.text  # a new document, queued
    job = r.json()["job"]["id"]

    def settled() -> str | None:
        status = httpx.get(f"{hearth.url}/api/rag/jobs/{job}", headers=hearth.headers()).json()["status"]
        return status if status in ("indexed", "failed") else None

    assert wait_until(settled, 60, what="ingestion", every=0.1) == "indexed"


def test_rag_sources_reach_the_prompt_and_the_stored_reply(hearth) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(f"{hearth.url}/api/rag/collections", json={"name": "home"}, headers=hearth.headers())
    assert r.status_code == 201, r.text
    _ingest(
        hearth,
        "home",
        "Boiler manual",
        "Bleed the radiators every autumn. The boiler pressure should read 1.5 bar.",
    )
    _ingest(hearth, "home", "Garden notes", "Tomatoes need watering every morning in July and August.")

    events = []
    with httpx.stream(
        "POST",
        f"{hearth.url}/api/conversations",
        json={"content": "What should the boiler pressure read?", "rag": True, "collection": "home"},
        headers=hearth.headers(),
        timeout=60,
    ) as response:
        assert response.status_code == 201, response.read()
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(orjson.loads(line[6:]))
    start = events[0]
    assert start["rag"] is True and start["collection"] == "home"
    assert start["sources"] and start["sources"][0]["title"] == "Boiler manual"

    prompt = hearth.upstream.stats.bodies[-2]["messages"]  # the streamed turn (the last body is the title)
    assert prompt[0]["role"] == "system"
    assert (
        "1.5 bar" in prompt[-1]["content"]
        and "What should the boiler pressure read?" in prompt[-1]["content"]
    )

    detail = httpx.get(
        f"{hearth.url}/api/conversations/{start['conversation_id']}", headers=hearth.headers()
    ).json()
    user, assistant = detail["messages"]
    assert user["content"] == "What should the boiler pressure read?"  # stored as asked, without the context
    assert user["metadata"] == {"rag": True, "collection": "home"}
    sources = assistant["metadata"]["rag_sources"]
    assert sources[0]["title"] == "Boiler manual" and "1.5 bar" in sources[0]["text"]
    assert all(s["chunk_id"] and s["document_id"] for s in sources)


def test_rag_preference_and_foreign_collection(hearth) -> None:  # type: ignore[no-untyped-def]
    put = httpx.put(
        f"{hearth.url}/api/me/preferences",
        json={"rag_enabled": True, "collection": "home"},
        headers=hearth.headers(),
    )
    assert put.status_code == 200
    r = httpx.post(
        f"{hearth.url}/api/conversations",
        json={"content": "When do tomatoes need water?", "stream": False},
        headers=hearth.headers(),
        timeout=60,
    )
    assert r.status_code == 201, r.text
    assert r.json()["assistant"]["metadata"]["rag_sources"][0]["title"] == "Garden notes"
    before = len(httpx.get(f"{hearth.url}/api/conversations", headers=hearth.headers()).json())
    r = httpx.post(
        f"{hearth.url}/api/conversations",
        json={"content": "hi", "collection": "nobody-has-this"},
        headers=hearth.headers(),
    )
    assert r.status_code == 404 and "nobody-has-this" in r.json()["error"]["message"]
    off = httpx.post(
        f"{hearth.url}/api/conversations",
        json={"content": "no documents please", "rag": False, "stream": False},
        headers=hearth.headers(),
    )
    assert off.status_code == 201 and off.json()["assistant"]["metadata"]["rag_sources"] == []
    assert len(httpx.get(f"{hearth.url}/api/conversations", headers=hearth.headers()).json()) == before + 1
