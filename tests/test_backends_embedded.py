"""The embedded backends on the real packaged models: SmolLM2-135M (llama.cpp) and MiniLM-L6 int8 (ONNX).

Each model loads once per module. LLM requests stay short (max_tokens <= 32) so the file runs in seconds on
one thread; the cross-encoder runs a tiny hand-built ONNX graph because no package ships such weights.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hearth.config import BackendConfig
from hearth.gateway.backends.base import RequestTooLarge
from hearth.gateway.backends.cross_encoder import CrossEncoderBackend
from hearth.gateway.backends.embedding_rerank import EmbeddingRerankBackend
from hearth.gateway.backends.llama_cpp import LlamaCppBackend
from hearth.gateway.backends.onnx_embedding import OnnxEmbeddingBackend, default_model_files
from tests.helpers import wait_for

QUESTION = [{"role": "user", "content": "Name three colours of the rainbow."}]


@pytest.fixture(scope="module")
def llm() -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend("local-llm", BackendConfig(type="llama_cpp"))
    backend.load()
    yield backend
    asyncio.run(backend.close())


@pytest.fixture(scope="module")
def embedder() -> Iterator[OnnxEmbeddingBackend]:
    backend = OnnxEmbeddingBackend("local-embed", BackendConfig(type="onnx_embedding"))
    backend.load()
    yield backend
    asyncio.run(backend.close())


async def collect(stream: Any) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


# -- chat


async def test_chat_returns_text_and_usage(llm: LlamaCppBackend) -> None:
    await llm.start()  # idempotent once loaded
    body = {"messages": QUESTION, "max_tokens": 16, "temperature": 0}
    result = await llm.chat(body, None)

    assert result["id"].startswith("chatcmpl-") and result["object"] == "chat.completion"
    assert result["model"] == "smollm2-135m-instruct"
    choice = result["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"].strip()
    # llama-cpp-python's own non-streaming count is the reference for both numbers.
    raw = llm.llama.create_chat_completion(messages=QUESTION, max_tokens=16, temperature=0)
    assert choice["message"]["content"] == raw["choices"][0]["message"]["content"]
    assert choice["finish_reason"] == raw["choices"][0]["finish_reason"]
    usage = result["usage"]
    assert usage["prompt_tokens"] == raw["usage"]["prompt_tokens"]
    assert usage["completion_tokens"] == raw["usage"]["completion_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert (await llm.chat(body, "my-alias"))["model"] == "my-alias"


async def test_stream_yields_incremental_chunks(llm: LlamaCppBackend) -> None:
    body = {
        "messages": QUESTION,
        "max_tokens": 32,
        "temperature": 0,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    chunks, arrived = [], []
    async for chunk in llm.chat_stream(body, None):
        chunks.append(chunk)
        arrived.append(time.perf_counter() - started)

    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    content = [i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content) == 32  # one chunk per token, not one blob
    # Tokens arrive as they are made: the first well before the last.
    assert arrived[content[0]] < arrived[content[-1]] / 2
    finish = chunks[-2]["choices"][0]
    assert finish["finish_reason"] == "length" and finish["delta"] == {}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 32

    whole = await llm.chat({"messages": QUESTION, "max_tokens": 32, "temperature": 0}, None)
    assert text_of(chunks) == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == whole["usage"]

    plain = await collect(llm.chat_stream({"messages": QUESTION, "max_tokens": 4}, None))
    assert plain[-1]["choices"][0]["finish_reason"] == "length"  # no usage chunk unless asked


async def test_max_tokens_gives_length(llm: LlamaCppBackend) -> None:
    for key in ("max_tokens", "max_completion_tokens"):
        result = await llm.chat({"messages": QUESTION, key: 5, "temperature": 0}, None)
        assert result["choices"][0]["finish_reason"] == "length"
        assert result["usage"]["completion_tokens"] == 5


async def test_stop_sequence_ends_the_text(llm: LlamaCppBackend) -> None:
    body: dict[str, Any] = {"messages": QUESTION, "max_tokens": 32, "temperature": 0}
    full = (await llm.chat(body, None))["choices"][0]["message"]["content"]
    words = full.split()
    assert len(words) >= 5, full
    stop = " " + words[3]
    expected = full[: full.index(stop)]

    result = await llm.chat({**body, "stop": [stop, "never-appears"]}, None)
    assert result["choices"][0]["message"]["content"] == expected
    assert result["choices"][0]["finish_reason"] == "stop"

    chunks = await collect(llm.chat_stream({**body, "stop": stop}, None))
    assert text_of(chunks) == expected
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_same_seed_same_text(llm: LlamaCppBackend) -> None:
    body = {"messages": QUESTION, "max_tokens": 24, "temperature": 0.9, "seed": 1234}
    first = (await llm.chat(body, None))["choices"][0]["message"]["content"]
    second = (await llm.chat(body, None))["choices"][0]["message"]["content"]
    assert first == second


async def test_closing_the_stream_stops_generation(llm: LlamaCppBackend) -> None:
    short = {"messages": QUESTION, "max_tokens": 4, "temperature": 0}
    reference = await llm.chat(short, None)
    # max_tokens is large so that only an early stop can make this quick.
    stream = llm.chat_stream({"messages": QUESTION, "max_tokens": 1000, "temperature": 0}, None)
    seen = 0
    async for chunk in stream:
        if chunk["choices"][0]["delta"].get("content"):
            seen += 1
            if seen == 3:
                break
    await stream.aclose()  # what the router does when the client disconnects

    assert not llm.busy  # the model is free as soon as aclose() returns
    stats = llm.last_stats
    assert stats is not None and stats.cancelled
    assert stats.completion_tokens <= seen + 2
    result = await llm.chat(short, None)
    # The half-finished generation left nothing behind in the model's state.
    assert result["choices"][0] == reference["choices"][0] and result["usage"] == reference["usage"]


async def test_cancelling_a_chat_stops_generation(llm: LlamaCppBackend) -> None:
    llm.last_stats = None  # so that a previous cancelled generation cannot answer for this one
    task = asyncio.create_task(llm.chat({"messages": QUESTION, "max_tokens": 1000, "temperature": 0}, None))
    await wait_for(lambda: llm.busy, 30, what="generation under way")  # the worker holds the model
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not llm.busy
    assert llm.last_stats is not None and llm.last_stats.cancelled
    assert llm.last_stats.completion_tokens < 100


async def test_requests_take_turns(llm: LlamaCppBackend) -> None:
    body = {"messages": QUESTION, "max_tokens": 8, "temperature": 0}
    alone = await llm.chat(body, None)
    together = await asyncio.gather(llm.chat(body, None), collect(llm.chat_stream(body, None)))
    assert together[0]["choices"][0]["message"] == alone["choices"][0]["message"]
    assert text_of(together[1]) == alone["choices"][0]["message"]["content"]


async def test_prompt_too_large(llm: LlamaCppBackend) -> None:
    huge = {"messages": [{"role": "user", "content": "lorem ipsum " * 350_000}]}  # ~4 MB
    before = llm.last_stats
    with pytest.raises(RequestTooLarge, match="context window is 4096") as caught:
        await llm.chat(huge, None)
    # Refused before the model was asked: nothing generated, the model free.
    assert llm.last_stats is before and not llm.busy
    assert caught.value.status == 400 and not caught.value.retryable
    with pytest.raises(RequestTooLarge):
        await anext(llm.chat_stream(huge, None))  # before any chunk

    long = {"messages": [{"role": "user", "content": "word " * 5000}]}
    with pytest.raises(RequestTooLarge, match=r"prompt is \d+ tokens; this model's context window is 4096"):
        await llm.chat(long, None)
    short_but_greedy = {"messages": QUESTION, "max_tokens": 4096}
    with pytest.raises(RequestTooLarge, match="max_tokens=4096"):
        await llm.chat(short_but_greedy, None)
    assert not llm.busy


# -- embeddings


SENTENCES = [
    "A cat is sitting on the mat.",
    "A kitten rests on a rug.",
    "The central bank raised interest rates again.",
    "",
    "Short.",
    "A much longer sentence about the weather in the mountains, which changes quickly in spring and autumn.",
]


async def test_embeddings_shape_and_norm(embedder: OnnxEmbeddingBackend) -> None:
    result = await embedder.embed(SENTENCES, None)
    assert result.model == "all-MiniLM-L6-v2-int8"
    vectors = np.asarray(result.vectors)
    assert vectors.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    tokenizer_tokens = [len(embedder._tokenizer.encode(s).ids) for s in SENTENCES]
    assert result.prompt_tokens == sum(tokenizer_tokens)
    assert tokenizer_tokens[3] == 2  # "" is [CLS] [SEP]


def test_similar_sentences_are_closer(embedder: OnnxEmbeddingBackend) -> None:
    cat, kitten, bank = embedder.embed_sync(SENTENCES[:3])
    assert cat @ kitten > cat @ bank + 0.2


def test_batch_equals_single(embedder: OnnxEmbeddingBackend) -> None:
    batch = embedder.embed_sync(SENTENCES)
    single = np.stack([embedder.embed_sync([s])[0] for s in SENTENCES])
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_long_text_is_truncated(embedder: OnnxEmbeddingBackend) -> None:
    text = " ".join(f"word{i % 97} tree river" for i in range(1700))  # ~5,000 words
    vectors, tokens = embedder.encode([text, "tree"])
    assert vectors.shape == (2, 384) and np.all(np.isfinite(vectors))
    assert tokens == 256 + 3


async def test_embedding_rerank(embedder: OnnxEmbeddingBackend) -> None:
    reranker = EmbeddingRerankBackend("local-rerank", embedder)
    await reranker.start()
    docs = ["Stock prices fell on Monday.", "Cats like to sleep in the sun.", "Dogs bark at the mailman."]
    result = await reranker.rerank("Where do cats nap?", docs, None)
    assert len(result.scores) == 3
    assert result.scores[1] > result.scores[0] and result.scores[1] > result.scores[2]
    query, *vectors = embedder.embed_sync(["Where do cats nap?", *docs])
    np.testing.assert_allclose(result.scores, [v @ query for v in vectors], atol=1e-5)
    embedded = await embedder.embed(["Where do cats nap?", *docs], None)
    assert result.prompt_tokens == embedded.prompt_tokens and result.model == "all-MiniLM-L6-v2-int8"


# -- cross-encoder


def keyword_graph(path: Path, keyword_id: int) -> None:
    """logit = occurrences of `keyword_id` among the document's real tokens (token type 1, mask 1),
    minus 1000 per padding token the mask lets through: wrong or missing tensors change the scores."""
    import onnx
    from onnx import TensorProto, helper

    def const(name: str, value: Any, dtype: int) -> Any:
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, dtype, [], [value]))

    axes = helper.make_node(
        "Constant", [], ["axes"], value=helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    )
    nodes = [
        const("kw", keyword_id, TensorProto.INT64),
        const("pad", 0, TensorProto.INT64),
        const("penalty", -1000.0, TensorProto.FLOAT),
        axes,
        helper.make_node("Equal", ["input_ids", "kw"], ["is_kw"]),
        helper.make_node("Cast", ["is_kw"], ["kw_f"], to=TensorProto.FLOAT),
        helper.make_node("Equal", ["input_ids", "pad"], ["is_pad"]),
        helper.make_node("Cast", ["is_pad"], ["pad_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["token_type_ids"], ["type_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["kw_f", "type_f"], ["kw_doc"]),
        helper.make_node("Mul", ["kw_doc", "mask_f"], ["kw_real"]),
        helper.make_node("ReduceSum", ["kw_real", "axes"], ["hits"], keepdims=1),
        helper.make_node("Mul", ["pad_f", "mask_f"], ["pad_seen"]),
        helper.make_node("ReduceSum", ["pad_seen", "axes"], ["pads"], keepdims=1),
        helper.make_node("Mul", ["pads", "penalty"], ["pad_cost"]),
        helper.make_node("Add", ["hits", "pad_cost"], ["logits"]),
    ]
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
        for n in ("input_ids", "attention_mask", "token_type_ids")
    ]
    output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1])
    graph = helper.make_graph(nodes, "keyword_cross_encoder", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


async def test_cross_encoder_feeds_pairs_and_orders_by_logit(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    tokenizer_file = default_model_files()[1]
    shutil.copy(tokenizer_file, tmp_path / "tokenizer.json")  # found beside the model by default
    keyword = Tokenizer.from_file(str(tokenizer_file)).token_to_id("apple")
    keyword_graph(tmp_path / "model.onnx", keyword)

    config = BackendConfig(type="cross_encoder", model_path=str(tmp_path / "model.onnx"), batch_size=2)
    backend = CrossEncoderBackend("ce", config)
    await backend.start()
    docs = [
        "banana bread",
        "apple apple apple",
        "an apple a day keeps the doctor away, and so does apple pie with a long list of words",
        "nothing to see here",
        "apple",
    ]
    result = await backend.rerank("apple apple", docs, None)  # query hits must not count (type 0)

    hits = np.array([0, 3, 2, 0, 1], dtype=np.float32)
    np.testing.assert_allclose(result.scores, 1 / (1 + np.exp(-hits)), rtol=1e-6)
    assert sorted(range(5), key=lambda i: -result.scores[i])[:3] == [1, 2, 4]
    expected_tokens = sum(
        len(e.ids) for e in backend._tokenizer.encode_batch([("apple apple", d) for d in docs])
    )
    assert result.prompt_tokens == expected_tokens
    assert result.model == tmp_path.name
    await backend.close()
