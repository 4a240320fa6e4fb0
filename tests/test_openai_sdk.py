"""The official openai SDK (sync, async, streaming) against a real Hearth server on the embedded models:
SmolLM2 via llama.cpp, MiniLM int8 via ONNX, and embedding-similarity rerank."""

from __future__ import annotations

import asyncio
import base64

import httpx
import numpy as np
import openai
import pytest

from hearth.gateway.backends.onnx_embedding import default_model_files, load_tokenizer
from tests.harness import run_hearth
from tests.helpers import wait_until


@pytest.fixture(scope="module")
def hearth(tmp_path_factory):
    with run_hearth(tmp_path_factory.mktemp("sdk")) as server:
        yield server


@pytest.fixture
def client(hearth) -> openai.OpenAI:
    return openai.OpenAI(base_url=hearth.v1, api_key=hearth.admin_key, max_retries=0)


def test_lists_the_seed_aliases(client):
    ids = {m.id for m in client.models.list()}
    assert ids == {
        "chat",
        "tip-generator",
        "judge",
        "embedder",
        "reranker",
        "stt",
        "tts",
        "whisper-1",
        "tts-1",
    }


def test_sync_chat_completion_from_embedded_model(client):
    r = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=24,
        temperature=0,
        seed=7,
    )
    text = r.choices[0].message.content
    assert isinstance(text, str) and text.strip()
    assert r.usage.prompt_tokens > 5 and 0 < r.usage.completion_tokens <= 24
    assert r.choices[0].finish_reason == ("length" if r.usage.completion_tokens == 24 else "stop")
    # Same seed, temperature 0: the same answer.
    again = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=24,
        temperature=0,
        seed=7,
    )
    assert again.choices[0].message.content == text


def test_max_tokens_and_stop(client):
    r = client.chat.completions.create(
        model="chat",
        max_tokens=5,
        temperature=0,
        messages=[{"role": "user", "content": "Count from one to fifty."}],
    )
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5


def test_streaming_with_usage(client):
    stream = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Tell me about the sea."}],
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) >= 3  # token by token, not one blob
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage.completion_tokens > 0
    assert finish == ["length" if usage.completion_tokens == 16 else "stop"]
    # A token can decode to an empty delta (a partial UTF-8 sequence), so deltas never outnumber tokens.
    assert len(deltas) <= usage.completion_tokens <= 16


def test_async_client_concurrent_requests_queue_on_the_single_model(hearth):
    async def run() -> list[str]:
        client = openai.AsyncOpenAI(base_url=hearth.v1, api_key=hearth.admin_key, max_retries=0)
        rs = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="judge",
                    messages=[{"role": "user", "content": f"Say the number {i}."}],
                    max_tokens=8,
                )
                for i in range(3)
            )
        )
        await client.close()
        return [r.choices[0].message.content for r in rs]

    answers = asyncio.run(run())
    assert len(answers) == 3 and all(a.strip() for a in answers)


def test_embeddings_float_and_base64(client):
    sentences = ["The cat sits on the mat.", "A kitten rests on a rug.", "Quarterly tax filing deadlines."]
    r = client.embeddings.create(model="embedder", input=sentences)
    tokenizer = load_tokenizer(default_model_files()[1], 256)  # as the server tokenises: no fixed padding
    vectors = np.array([d.embedding for d in r.data])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert r.usage.prompt_tokens == sum(len(tokenizer.encode(s).ids) for s in sentences)
    # The SDK asks for base64 by default when numpy is around; check the raw encoding too.
    raw = httpx.post(
        f"{client.base_url}embeddings",
        headers={"Authorization": f"Bearer {client.api_key}"},
        json={"model": "embedder", "input": "The cat sits on the mat.", "encoding_format": "base64"},
    )
    decoded = np.frombuffer(base64.b64decode(raw.json()["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, vectors[0], atol=1e-6)


def test_rerank(hearth):
    r = httpx.post(
        f"{hearth.v1}/rerank",
        headers=hearth.headers(),
        json={
            "model": "reranker",
            "query": "How do I bake bread?",
            "top_n": 2,
            "documents": [
                "Stock markets fell sharply today.",
                "Knead the dough, let it rise, then bake at 220C.",
                "Sourdough bread needs a starter and a hot oven.",
            ],
        },
    )
    assert r.status_code == 200
    results = r.json()["results"]
    assert len(results) == 2 and {x["index"] for x in results} == {1, 2}
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]


def test_huge_prompt_is_a_clear_error_and_server_survives(client, hearth):
    prompt = "hello " * 1_000_000  # ~1M tokens, 6 MB: under the body limit, far over the context window
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": prompt}], max_tokens=4
        )
    assert "context" in str(err.value).lower()
    r = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0
    )
    assert r.choices[0].message.content.strip() and r.usage.completion_tokens <= 4


def test_client_disconnect_frees_the_embedded_model(hearth, client):
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": "Write a very long essay about rivers."}],
        "max_tokens": 400,
        "stream": True,
    }
    with httpx.stream(
        "POST", f"{hearth.v1}/chat/completions", json=body, headers=hearth.headers(), timeout=60
    ) as r:
        seen = 0
        for line in r.iter_lines():
            if line.startswith("data: {"):
                seen += 1
                if seen == 3:
                    break
    # The generation stopped when the client left: the model is free and made far fewer than 400 tokens.
    llm = hearth.app.state.platform.gateway.aliases["chat"].groups[0][0].backend
    wait_until(lambda: not llm.busy and llm.last_stats is not None, 30, what="the embedded model free")
    assert llm.last_stats.cancelled and llm.last_stats.completion_tokens < 100
    r = httpx.post(
        f"{hearth.v1}/chat/completions",
        headers=hearth.headers(),
        timeout=60,
        json={"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
    )
    assert r.status_code == 200
