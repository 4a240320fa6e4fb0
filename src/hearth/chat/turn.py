"""A chat turn in flight: relays the model's reply as events and stores both messages once it ends."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from hearth.gateway.service import Caller
from hearth.gateway.stream import ChatStream
from hearth.platform.db import new_id
from hearth.platform.errors import HearthError
from hearth.rag.ports import Retriever
from hearth.rag.schemas import RagSource

if TYPE_CHECKING:
    from hearth.chat.turns import Turns

log = logging.getLogger("hearth.chat")


class Turn:
    """One exchange in flight. `events()` relays the reply and stores it when it completes; `close()`
    (always called by the response, however it ends) stores what was said if the client left early."""

    def __init__(
        self,
        service: Turns,
        *,
        user_id: str,
        caller: Caller,
        conversation_id: str,
        new: bool,
        title_pending: bool,
        content: str,
        received_at: datetime,
        started: float,
        model: str,
        rag: bool,
        collection: str | None,
        sources: list[dict[str, Any]],
        session_id: str | None,
        stream: ChatStream,
        found: list[RagSource] | None = None,
    ) -> None:
        self.service = service
        self.user_id = user_id
        self.caller = caller
        self.conversation_id = conversation_id
        self.new = new
        self.title_pending = title_pending
        self.content = content
        self.received_at = received_at
        self.started = started
        self.model = model
        self.rag = rag
        self.collection = collection
        self.sources = sources
        self.found = found or []  # the retrieved passages themselves, to check the answer against
        self.session_id = session_id
        self.stream = stream
        self.user_message_id = new_id()
        self.assistant_message_id = new_id()
        self.parts: list[str] = []
        self.usage = (0, 0)
        self.usage_estimated = True
        self.ttft_ms: float | None = None
        self.stored: dict[str, Any] | None = None
        self.final_text: str | None = None  # what to store instead of the streamed text (extractive answer)
        self.answer_meta: dict[str, Any] = {}  # answer_mode, answer_note, citations (RAG turns)
        self._storing = False

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """start → delta… → extractive_fallback (a RAG answer not grounded in its sources) → message (both
        stored) → title (first exchange) → done; or error."""
        yield {
            "type": "start",
            "conversation_id": self.conversation_id,
            "user_message_id": self.user_message_id,
            "assistant_message_id": self.assistant_message_id,
            "model": self.model,
            # Which deployment answers (it produced the first chunk, so it produces the whole reply) and,
            # when it is not the alias's primary, why: `hearth chat` prints a notice.
            "deployment": self.stream.served.deployment,
            "fallback": self.stream.served.fallback,
            "rag": self.rag,
            "collection": self.collection,
            "sources": self.sources,
        }
        error: dict[str, Any] | None = None
        async for chunk in self.stream:
            if "error" in chunk:
                error = chunk["error"]
                break
            usage = chunk.get("usage")
            if usage:
                self.usage = (int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
                self.usage_estimated = False
            for choice in chunk.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if text:
                    if self.ttft_ms is None:
                        self.ttft_ms = round((time.perf_counter() - self.started) * 1000, 1)
                    self.parts.append(text)
                    if self.usage_estimated:  # one streamed piece is one token for llama.cpp and vLLM
                        self.usage = (self.usage[0], self.usage[1] + 1)
                    yield {"type": "delta", "content": text}
        if error is None and self.rag and self.found and self.service.retriever is not None:
            replaced = self._check_answer(self.service.retriever)
            if replaced is not None:
                yield replaced
        stored = await self.finish(
            status="interrupted" if error else "complete", reason="upstream_error" if error else None
        )
        if stored is None:
            yield {
                "type": "error",
                "error": {"message": "the reply could not be stored", "code": "not_stored"},
            }
            return
        yield {
            "type": "message",
            "user": stored["user"].model_dump(mode="json"),
            "assistant": stored["assistant"].model_dump(mode="json"),
        }
        if error is not None:
            yield {"type": "error", "error": error}
            return
        if self.title_pending:
            title = await self.service.title_conversation(turn=self, answer=stored["assistant"].content)
            if title is not None:
                yield {"type": "title", "conversation_id": self.conversation_id, "title": title}
        yield {"type": "done"}

    def _check_answer(self, retriever: Retriever) -> dict[str, Any] | None:
        """Check the streamed RAG answer against its sources. When it is not grounded, the sources' best
        sentences (cited) are stored instead, and the event returned tells the client to show them."""
        result = retriever.check_answer(question=self.content, answer="".join(self.parts), sources=self.found)
        self.answer_meta = {
            "answer_mode": result["answer_mode"],
            "answer_note": result["answer_note"],
            "citations": result["citations"],
        }
        if result["answer_mode"] != "extractive_fallback":
            return None
        self.answer_meta["generated_text"] = "".join(self.parts)
        self.final_text = result["answer"]
        return {
            "type": "extractive_fallback",
            "content": result["answer"],
            "reason": result["answer_note"],
            "citations": result["citations"],
        }

    async def finish(self, *, status: str, reason: str | None) -> dict[str, Any] | None:
        """Stop the model and store both messages, once; shielded so a disconnect cannot cut it short."""
        if self._storing:
            return self.stored
        self._storing = True
        with anyio.CancelScope(shield=True):
            await self.stream.aclose()
            try:
                text = self.final_text if self.final_text is not None else "".join(self.parts)
                self.stored = await self.service.store_turn(
                    turn=self, text=text, status=status, reason=reason
                )
            except HearthError as exc:  # e.g. the conversation was deleted while the reply streamed
                log.warning("chat turn not stored: %s", exc.message)
            except Exception:
                log.exception("chat turn not stored")
            if self.stored is not None and self.session_id is not None:
                try:
                    await self.service.sessions.touch(user_id=self.user_id, session_id=self.session_id)
                except HearthError as exc:  # it expired while the reply streamed: the messages still count
                    log.info("session not touched: %s", exc.message)
        return self.stored

    async def close(self) -> None:
        """The response is over: if the reply did not finish, keep what was said, marked interrupted."""
        await self.finish(status="interrupted", reason="client_disconnected")
