"""The chat context's event stream (seed 000): sessions, conversations and the messages stored in them.

Retrieval publishes its own RAGQueryExecuted (rag context) and the gateway its Inference* events."""

from __future__ import annotations

from typing import ClassVar

from hearth.events.schemas import Event


class _ChatEvent(Event):
    context: ClassVar[str] = "chat"


class SessionCreated(_ChatEvent):
    session_id: str
    user_id: str
    kind: str


class ConversationStarted(_ChatEvent):
    conversation_id: str
    user_id: str


class MessageReceived(_ChatEvent):
    conversation_id: str
    message_id: str
    user_id: str
    chars: int
    rag: bool
    collection: str | None = None


class ResponseGenerated(_ChatEvent):
    conversation_id: str
    message_id: str
    user_id: str
    model: str
    completion_tokens: int
    latency_ms: float
    interrupted: bool
    rag_sources: int = 0


class MessageStored(_ChatEvent):
    conversation_id: str
    message_id: str
    user_id: str
    role: str
    status: str


class ConversationTitled(_ChatEvent):
    conversation_id: str
    user_id: str
    title: str
    source: str  # model | fallback


class ConversationDeleted(_ChatEvent):
    conversation_id: str
    user_id: str


class PreferencesUpdated(_ChatEvent):
    user_id: str
