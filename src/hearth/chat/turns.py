"""A chat turn's work with the database and the models: check the request and open the stream (`begin`),
store both messages with their events (`store_turn`), and name a new conversation (`title_conversation`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio
from sqlalchemy.exc import IntegrityError

from hearth.chat import titles
from hearth.chat.events import (
    ConversationStarted,
    ConversationTitled,
    MessageReceived,
    MessageStored,
    ResponseGenerated,
)
from hearth.chat.models import Conversation, Message
from hearth.chat.preferences import PreferencesService
from hearth.chat.repository import ConversationRepository
from hearth.chat.schemas import MessageOut, SendMessage
from hearth.chat.sessions import Sessions
from hearth.chat.turn import Turn
from hearth.config import Settings
from hearth.events.bus import EventBus
from hearth.gateway.service import Caller, Gateway
from hearth.platform.db import Database, new_id, utcnow
from hearth.platform.errors import HearthError, bad_request
from hearth.rag.ports import Retriever
from hearth.rag.schemas import RagSource

log = logging.getLogger("hearth.chat")
SEQ_ATTEMPTS = 5  # concurrent turns of one conversation race for the next position; the loser retries


class Turns:
    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        gateway: Gateway,
        settings: Settings,
        retriever: Retriever | None,
        sessions: Sessions,
        preferences: PreferencesService,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.bus = bus
        self.gateway = gateway
        self.settings = settings
        self.retriever = retriever  # None when the rag context is not loaded
        self.sessions = sessions
        self.preferences = preferences
        self.clock = clock

    async def begin(
        self, *, user_id: str, caller: Caller, conversation_id: str | None, request: SendMessage
    ) -> Turn:
        """Check the request, retrieve RAG sources and open the model's stream. Everything that can be
        refused is refused here, before a byte is streamed or a row stored."""
        received_at = self.clock()
        started = time.perf_counter()
        content = request.content
        if not content.strip():
            raise HearthError(422, "content must not be empty", param="content", code="empty_content")
        limit = self.settings.chat_max_content_chars
        if len(content) > limit:
            raise HearthError(
                413,
                f"content is {len(content)} characters long; the limit is {limit}",
                param="content",
                code="content_too_long",
            )
        prefs = await self.preferences.get(user_id=user_id)
        model = request.model or prefs.model or self.settings.chat_default_model
        self.gateway.router.get(model, "chat")  # 404/400 for an unknown or non-chat alias
        rag = request.rag if request.rag is not None else prefs.rag_enabled
        collection = request.collection or prefs.collection
        if request.session_id is not None:  # checked now, touched once the turn is stored
            await self.sessions.get(user_id=user_id, session_id=request.session_id)

        history: list[dict[str, str]] = []
        title_pending = True
        if conversation_id is not None:
            async with self.db.sessions() as s:
                repo = ConversationRepository(s, owner_id=user_id)
                conversation = await repo.get_or_404(conversation_id)
                title_pending = conversation.title_source == "pending"
                past = await repo.messages.history(conversation_id, last=self.settings.chat_history_messages)
                history = _within(past, self.settings.chat_history_chars)

        sources: list[dict[str, Any]] = []
        found: list[RagSource] = []
        prompt: list[dict[str, Any]]
        if rag:
            if not collection:
                raise bad_request(
                    "RAG is on but no collection is named: pass 'collection' or set a default one with "
                    "PUT /api/me/preferences",
                    param="collection",
                )
            prompt, found = await self._rag_prompt(user_id, collection, content, history)
            sources = [_source(s) for s in found]
        else:
            prompt = [*history, {"role": "user", "content": content}]
        if self.settings.chat_system_prompt and not any(m["role"] == "system" for m in prompt):
            prompt.insert(0, {"role": "system", "content": self.settings.chat_system_prompt})

        body: dict[str, Any] = {
            "model": model,
            "messages": prompt,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": request.max_tokens or self.settings.chat_max_tokens,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        stream = await self.gateway.chat_stream(body, caller)
        return Turn(
            self,
            user_id=user_id,
            caller=caller,
            conversation_id=conversation_id or new_id(),
            new=conversation_id is None,
            title_pending=title_pending,
            content=content,
            received_at=received_at,
            started=started,
            model=model,
            rag=rag,
            collection=collection if rag else None,
            sources=sources,
            found=found,
            session_id=request.session_id,
            stream=stream,
        )

    async def _rag_prompt(
        self, user_id: str, collection: str, question: str, history: list[dict[str, str]]
    ) -> tuple[list[dict[str, Any]], list[RagSource]]:
        if self.retriever is None:
            raise HearthError(503, "RAG is not available on this server", code="rag_unavailable")
        found = await self.retriever.retrieve(user_id=user_id, collection=collection, query=question)
        messages = self.retriever.answer_messages(question=question, sources=found)
        # The RAG system prompt leads; earlier turns follow; the question with its context comes last.
        system = [m for m in messages if m.get("role") == "system"]
        rest = [m for m in messages if m.get("role") != "system"]
        return [*system, *history, *rest], found

    async def store_turn(self, *, turn: Turn, text: str, status: str, reason: str | None) -> dict[str, Any]:
        """Store the user's message and the (whole or partial) reply in one transaction, with events."""
        now = self.clock()
        prompt_tokens, completion_tokens = turn.usage
        latency_ms = round((time.perf_counter() - turn.started) * 1000, 1)
        assistant_meta: dict[str, Any] = {
            "model_used": turn.model,
            "deployment": turn.stream.deployment.key,
            "tokens_used": prompt_tokens + completion_tokens,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "latency_ms": latency_ms,
            "ttft_ms": turn.ttft_ms,
            "rag_sources": turn.sources,
            "deployment_fallback": turn.stream.served.fallback,
            **turn.answer_meta,
        }
        if turn.usage_estimated:
            assistant_meta["tokens_estimated"] = True
        if reason:
            assistant_meta["interrupted_reason"] = reason
        for attempt in range(SEQ_ATTEMPTS):
            try:
                return await self._insert_turn(turn, text=text, status=status, meta=assistant_meta, now=now)
            except IntegrityError:
                # Another turn of this conversation took the same position first: count again.
                if turn.new or attempt == SEQ_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _insert_turn(
        self, turn: Turn, *, text: str, status: str, meta: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        completion_tokens = meta["completion_tokens"]
        latency_ms = meta["latency_ms"]
        async with self.db.transaction() as s:
            repo = ConversationRepository(s, owner_id=turn.user_id)
            if turn.new:
                conversation = Conversation(
                    id=turn.conversation_id,
                    user_id=turn.user_id,
                    title=titles.fallback_title(turn.content),
                    title_source="pending",
                    created_at=turn.received_at,
                    updated_at=now,
                )
                s.add(conversation)
                await s.flush()
                await self.bus.publish(
                    ConversationStarted(conversation_id=conversation.id, user_id=turn.user_id), session=s
                )
                seq = 1
            else:
                conversation = await repo.get_or_404(turn.conversation_id, lock=True)
                conversation.updated_at = now
                seq = await repo.messages.next_seq(turn.conversation_id)
            user = Message(
                id=turn.user_message_id,
                conversation_id=conversation.id,
                user_id=turn.user_id,
                session_id=turn.session_id,
                seq=seq,
                role="user",
                content=turn.content,
                status="complete",
                meta={"rag": turn.rag, "collection": turn.collection},
                created_at=turn.received_at,
            )
            assistant = Message(
                id=turn.assistant_message_id,
                conversation_id=conversation.id,
                user_id=turn.user_id,
                session_id=turn.session_id,
                seq=seq + 1,
                role="assistant",
                content=text,
                status=status,
                meta=meta,
                created_at=now,
            )
            s.add_all([user, assistant])
            await s.flush()
            common = {"conversation_id": conversation.id, "user_id": turn.user_id}
            for event in (
                MessageReceived(
                    **common,
                    message_id=user.id,
                    chars=len(turn.content),
                    rag=turn.rag,
                    collection=turn.collection,
                ),
                MessageStored(**common, message_id=user.id, role="user", status="complete"),
                ResponseGenerated(
                    **common,
                    message_id=assistant.id,
                    model=turn.model,
                    completion_tokens=completion_tokens,
                    latency_ms=latency_ms,
                    interrupted=status != "complete",
                    rag_sources=len(turn.sources),
                ),
                MessageStored(**common, message_id=assistant.id, role="assistant", status=status),
            ):
                await self.bus.publish(event, session=s)
            return {
                "user": MessageOut.model_validate(user),
                "assistant": MessageOut.model_validate(assistant),
                "title": conversation.title,
            }

    async def title_conversation(self, *, turn: Turn, answer: str) -> str | None:
        """Ask the title model for a title; keep the fallback when its output is unusable. Returns the
        title now set, or None when the conversation is gone."""
        raw: str | None = None
        try:
            with anyio.fail_after(self.settings.chat_title_timeout):
                response = await self.gateway.chat(
                    titles.title_request(
                        model=self.settings.chat_title_model, question=turn.content, answer=answer
                    ),
                    turn.caller,
                )
            choice = (response.get("choices") or [{}])[0]
            # A reply cut short for looping is no title, whatever is left of it.
            raw = (
                None
                if choice.get("stop_reason") == "repetition"
                else choice.get("message", {}).get("content")
            )
        except (HearthError, TimeoutError) as exc:
            log.info("title generation failed, keeping the fallback: %s", exc)
        title = titles.clean_title(raw)
        async with self.db.transaction() as s:
            repo = ConversationRepository(s, owner_id=turn.user_id)
            conversation = await repo.pending_title(turn.conversation_id)
            if conversation is None:  # deleted meanwhile, or a concurrent turn titled it first
                return None
            # Unusable output keeps the deterministic title the conversation was created with.
            conversation.title = title or conversation.title
            conversation.title_source = "model" if title else "fallback"
            await self.bus.publish(
                ConversationTitled(
                    conversation_id=conversation.id,
                    user_id=turn.user_id,
                    title=conversation.title,
                    source=conversation.title_source,
                ),
                session=s,
            )
            return conversation.title


def _within(past: list[Message], budget: int) -> list[dict[str, str]]:
    """The most recent messages whose text fits `budget` characters, oldest first, so a long
    conversation keeps fitting the model's context window."""
    kept: list[dict[str, str]] = []
    for message in reversed(past):
        if not message.content:
            continue
        budget -= len(message.content)
        if budget < 0:
            break
        kept.append({"role": message.role, "content": message.content})
    return kept[::-1]


def _source(source: RagSource) -> dict[str, Any]:
    return {
        "chunk_id": source.chunk_id,
        "document_id": source.document_id,
        "file": source.metadata.get("source"),  # the document's file name (or URL / id it was ingested as)
        "title": source.title,
        "score": source.score,
        "rerank_score": source.rerank_score,
        "text": source.text[:500],
    }
