"""Answers: the cited-answer prompt, citation repair (whole answers and streamed ones), and `query` /
`query_stream`, which share one path: search, the chat request, the answer's latency and its event."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any, Unpack

from hearth.events.buffer import EventBuffer
from hearth.gateway.service import Caller, Gateway
from hearth.rag import events, grounding
from hearth.rag.config import RagConfig
from hearth.rag.schemas import QueryResponse, RagSource
from hearth.rag.search import Question, Search, SearchResult, ms

SYSTEM_PROMPT = (
    "You answer questions using only the numbered context passages the user gives you. "
    "After each statement, cite the passage it comes from as [1], [2] and so on, using only the numbers "
    "shown. If the passages do not contain the answer, say that you do not know. "
    "Do not use outside knowledge."
)
_CITATION = re.compile(r"(\s*)\[(\s*\d+\s*(?:,\s*\d+\s*)*)\]")


def answer_messages(*, question: str, sources: list[RagSource]) -> list[dict]:
    """OpenAI chat messages: the system prompt, the numbered context and the question."""
    if sources:
        context = "\n\n".join(
            f"[{i}] {s.title}\n{s.text}" if s.title else f"[{i}] {s.text}" for i, s in enumerate(sources, 1)
        )
    else:
        context = "(no passages were found)"
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}"},
    ]


def fix_citations(answer: str, count: int) -> str:
    """Keep only citations [n] with 1 <= n <= count; a bracket left with none is removed."""

    def repair(match: re.Match[str]) -> str:
        numbers = [int(n) for n in match.group(2).split(",")]
        kept = [str(n) for n in dict.fromkeys(numbers) if 1 <= n <= count]
        # A dropped citation takes the space before it along, so "drag [9]." becomes "drag.".
        return f"{match.group(1)}[{', '.join(kept)}]" if kept else ""

    return _CITATION.sub(repair, answer) if "[" in answer else answer


class CitationFilter:
    """Repairs citations in a streamed answer: text is passed on as it comes, except a possible citation,
    which is held back until its closing bracket shows whether it names a real source."""

    # Trailing spaces are held too: they belong to a citation that may yet be dropped.
    _OPEN = re.compile(r"\s*(\[[\d,\s]*)?$")

    def __init__(self, count: int) -> None:
        self.count = count
        self.pending = ""

    def feed(self, text: str) -> str:
        buffer = self.pending + text
        self.pending = ""
        tail = self._OPEN.search(buffer)
        if tail is not None:
            buffer, self.pending = buffer[: tail.start()], buffer[tail.start() :]
        return fix_citations(buffer, self.count)

    def flush(self) -> str:
        rest, self.pending = self.pending, ""
        return fix_citations(rest, self.count)


def checked(question: str, text: str, sources: list[RagSource]) -> dict[str, Any]:
    """A generated answer with its citations repaired, checked for groundedness (an extractive answer
    replaces it when it fails), with the file name of each source it cites."""
    answer = fix_citations(text.strip(), len(sources))
    result = grounding.ground(question, answer, sources)
    return {
        "answer": result.answer,
        "answer_mode": result.mode,
        "answer_note": result.reason,
        "citations": grounding.citations(result.answer, sources),
    }


class Answers:
    def __init__(self, *, events: EventBuffer, gateway: Gateway, search: Search, config: RagConfig) -> None:
        self.events = events
        self.gateway = gateway
        self.search = search
        self.config = config

    async def query(
        self,
        *,
        generate: bool = True,
        max_tokens: int = 512,
        temperature: float = 0.2,
        **question: Unpack[Question],
    ) -> QueryResponse:
        """Retrieve, rerank and (with `generate`) answer with citations that all map to returned sources."""
        result, caller = await self._retrieve(question)
        started = None
        extra: dict[str, Any] = {"answer": None}
        if generate:
            started = time.perf_counter()
            body = self._body(question["query"], result.sources, max_tokens, temperature)
            response, served = await self.gateway.chat_served(body, caller)
            text = response["choices"][0]["message"].get("content") or ""
            extra = checked(question["query"], text, result.sources)
            extra |= {"deployment": served.deployment, "fallback": served.fallback}
        latency = await self._answered(question["user_id"], result, started)
        return QueryResponse(sources=result.sources, mode=result.mode, latency_ms=latency, **extra)

    async def query_stream(
        self, *, max_tokens: int = 512, temperature: float = 0.2, **question: Unpack[Question]
    ) -> tuple[SearchResult, AsyncIterator[dict[str, Any]]]:
        """Retrieval first (errors raise before any byte is sent), then an iterator of answer events:
        {"delta": text}… and finally {"answer", "latency_ms", "answer_mode", "answer_note", "citations",
        "deployment", "fallback"}. When the streamed answer fails the groundedness check, the final
        "answer" is the extractive one (answer_mode "extractive_fallback"), not the deltas' text."""
        result, caller = await self._retrieve(question)
        user_id, query = question["user_id"], question["query"]
        started = time.perf_counter()
        body = {**self._body(query, result.sources, max_tokens, temperature), "stream": True}
        stream = await self.gateway.chat_stream(body, caller)

        async def answer_events() -> AsyncIterator[dict[str, Any]]:
            citations = CitationFilter(len(result.sources))
            parts: list[str] = []
            try:
                async for chunk in stream:
                    for choice in chunk.get("choices", []):
                        text = (choice.get("delta") or {}).get("content")
                        if text and (out := citations.feed(text)):
                            parts.append(out)
                            yield {"delta": out}
                if rest := citations.flush():
                    parts.append(rest)
                    yield {"delta": rest}
            finally:
                await stream.aclose()
            latency = await self._answered(user_id, result, started)
            served = stream.served
            yield {
                **checked(query, "".join(parts), result.sources),
                "latency_ms": latency,
                "deployment": served.deployment,
                "fallback": served.fallback,
            }

        return result, answer_events()

    def _body(
        self, question: str, sources: list[RagSource], max_tokens: int, temperature: float
    ) -> dict[str, Any]:
        """The chat request that answers `question` from `sources` (streamed or not)."""
        return {
            "model": self.config.chat_model,
            "messages": answer_messages(question=question, sources=sources),
            "max_tokens": max_tokens,
            "temperature": temperature,
        }

    async def _retrieve(self, question: Question) -> tuple[SearchResult, Caller]:
        """The search both answer paths start from, and the caller their generation is charged to."""
        caller = question.get("caller") or Caller(user_id=question["user_id"])
        return await self.search.search(**{**question, "caller": caller}), caller

    async def _answered(self, user_id: str, result: SearchResult, started: float | None) -> dict[str, float]:
        """The query's latency with its answer's (`started`: when generation began; None: not generated),
        reported by the RAGQueryExecuted event. The event goes to the outbox with the next batch of them
        (`EventBuffer`), not in a transaction of this request's own: that commit cost more than the search."""
        latency = {**result.latency_ms, "generate": 0.0}
        if started is not None:
            latency["generate"] = ms(started)
            latency["total"] = round(latency["total"] + latency["generate"], 3)
        self.events.emit(
            events.RAGQueryExecuted(
                user_id=user_id,
                collection_id=result.collection_id,
                mode=result.mode,
                top_k=result.top_k,
                top_n=result.top_n,
                source_chunk_ids=[s.chunk_id for s in result.sources],
                generated=started is not None,
                latency_ms=latency,
            )
        )
        return latency
