"""How much the embedded LLM backend costs over raw llama-cpp-python, in generated tokens per second.

Two copies of the same model with the same settings: one called directly
(`Llama.create_chat_completion(stream=True)`), one through `LlamaCppBackend.chat_stream` (worker thread,
asyncio queue, OpenAI chunks). Same prompt, max_tokens, seed and temperature 0, so both produce the same
text; rounds alternate so background noise hits both. Target: ratio >= 0.95.

    .venv/bin/python bench/embedded_llm.py [--rounds 5] [--max-tokens 128] [--threads 1]
    .venv/bin/python bench/embedded_llm.py --embeddings   # sentences/s of the ONNX embedder instead
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from typing import Any

from hearth.config import BackendConfig
from hearth.gateway.backends.llama_cpp import LlamaCppBackend, default_model_path, plain_cpu_buffers
from hearth.gateway.backends.onnx_embedding import OnnxEmbeddingBackend

PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


def raw_round(llm: Any, max_tokens: int) -> tuple[float, str]:
    started = time.perf_counter()
    parts = []
    for chunk in llm.create_chat_completion(
        messages=PROMPT, max_tokens=max_tokens, temperature=0, seed=1, stream=True
    ):
        parts.append(chunk["choices"][0]["delta"].get("content") or "")
    return time.perf_counter() - started, "".join(parts)


async def backend_round(backend: LlamaCppBackend, max_tokens: int) -> tuple[float, str, int]:
    body = {"messages": PROMPT, "max_tokens": max_tokens, "temperature": 0, "seed": 1}
    body["stream_options"] = {"include_usage": True}
    started = time.perf_counter()
    parts, tokens = [], 0
    async for chunk in backend.chat_stream(body, None):
        if chunk["choices"]:
            parts.append(chunk["choices"][0]["delta"].get("content") or "")
        else:
            tokens = chunk["usage"]["completion_tokens"]
    return time.perf_counter() - started, "".join(parts), tokens


def embeddings(threads: int | None, rounds: int) -> None:
    """~1,000 sentences of 10-30 words in batches of 32: the RAG ingester's workload."""
    rng = random.Random(0)
    text = (
        "the a river mountain software engineer writes tests while cats sleep near warm windows and "
        "markets open early on rainy spring mornings in small towns across the quiet valley"
    )
    words = text.split(" ")
    sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(10, 30))) for _ in range(1000)]
    backend = OnnxEmbeddingBackend(
        "bench", BackendConfig(type="onnx_embedding", batch_size=32), threads=threads
    )
    backend.load()
    backend.embed_sync(sentences[:64])
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        backend.embed_sync(sentences)
        rates.append(len(sentences) / (time.perf_counter() - started))
    print(
        f"embeddings: median {statistics.median(rates):.0f} sentences/s, best {max(rates):.0f} "
        f"({backend.threads} intra-op thread(s), batch 32, {len(sentences)} sentences of 10-30 words)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="default: 1 for the LLM, 2 for ONNX")
    parser.add_argument("--embeddings", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.embeddings:
        embeddings(args.threads, args.rounds)
        return
    args.threads = args.threads or 1

    backend = LlamaCppBackend("bench", BackendConfig(type="llama_cpp"), threads=args.threads)
    await backend.start()
    import llama_cpp

    with plain_cpu_buffers():
        raw = llama_cpp.Llama(
            model_path=str(default_model_path()),
            n_ctx=backend.n_ctx,
            n_threads=args.threads,
            n_threads_batch=args.threads,
            verbose=False,
        )
    # Warm both (first-call allocations, page cache).
    raw_round(raw, 8)
    await backend_round(backend, 8)

    raw_rates, backend_rates = [], []
    print(f"{'round':>5} {'raw tok/s':>10} {'backend tok/s':>14} {'ratio':>6}")
    for i in range(args.rounds):
        raw_s, raw_text = raw_round(raw, args.max_tokens)
        backend_s, backend_text, tokens = await backend_round(backend, args.max_tokens)
        if backend_text != raw_text:
            raise SystemExit("the two paths produced different text: the comparison would be unfair")
        raw_rates.append(tokens / raw_s)
        backend_rates.append(tokens / backend_s)
        ratio = backend_rates[-1] / raw_rates[-1]
        print(f"{i + 1:>5} {raw_rates[-1]:>10.1f} {backend_rates[-1]:>14.1f} {ratio:>6.3f}")
    raw_median, backend_median = statistics.median(raw_rates), statistics.median(backend_rates)
    print(
        f"median: raw {raw_median:.1f} tok/s, backend {backend_median:.1f} tok/s, "
        f"ratio {backend_median / raw_median:.3f} ({tokens} tokens a round, {args.threads} thread(s))"
    )
    await backend.close()
    raw.close()


if __name__ == "__main__":
    asyncio.run(main())
