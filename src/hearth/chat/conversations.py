"""Stored conversations: a user's reads, search and deletes, and the retention sweep across all users."""

from __future__ import annotations

from datetime import datetime

from hearth.chat.events import ConversationDeleted, ConversationTitled
from hearth.chat.repository import ConversationRepository, sweep_messages
from hearth.chat.schemas import ConversationDetail, ConversationOut, MessageOut, SearchHit
from hearth.events.bus import EventBus
from hearth.platform.db import Database
from hearth.platform.errors import HearthError


class Conversations:
    def __init__(self, *, db: Database, bus: EventBus) -> None:
        self.db = db
        self.bus = bus

    async def list(self, *, user_id: str, limit: int, offset: int) -> list[ConversationOut]:
        """The user's conversations, most recently active first."""
        async with self.db.sessions() as s:
            repo = ConversationRepository(s, owner_id=user_id)
            rows = await repo.page(limit=limit, offset=offset)
            counts = await repo.messages.counts([r.id for r in rows])
            return [ConversationOut.counted(r, counts.get(r.id, 0)) for r in rows]

    async def get(self, *, user_id: str, conversation_id: str) -> ConversationDetail:
        """One of the user's conversations with all its messages."""
        async with self.db.sessions() as s:
            repo = ConversationRepository(s, owner_id=user_id)
            row = await repo.get_or_404(conversation_id)
            messages = [MessageOut.model_validate(m) for m in await repo.messages.history(conversation_id)]
            summary = ConversationOut.counted(row, len(messages))
            return ConversationDetail(**summary.model_dump(), messages=messages)

    async def message(self, *, user_id: str, conversation_id: str, message_id: str) -> MessageOut:
        """One message of one of the user's conversations."""
        async with self.db.sessions() as s:
            repo = ConversationRepository(s, owner_id=user_id)
            return MessageOut.model_validate(
                await repo.messages.in_conversation_or_404(conversation_id, message_id)
            )

    async def search(self, *, user_id: str, text: str, limit: int) -> list[SearchHit]:
        """The user's conversations whose title or messages contain `text`."""
        text = text.strip()
        if not text:
            raise HearthError(422, "q must not be empty", param="q", code="invalid_value")
        async with self.db.sessions() as s:
            repo = ConversationRepository(s, owner_id=user_id)
            hits = await repo.search(text, limit=limit)
            counts = await repo.messages.counts([c.id for c, _ in hits])
            return [
                SearchHit(conversation=ConversationOut.counted(c, counts.get(c.id, 0)), snippet=snippet)
                for c, snippet in hits
            ]

    async def rename(self, *, user_id: str, conversation_id: str, title: str) -> ConversationOut:
        """Give one of the user's conversations the title they chose (a model never replaces it)."""
        title = " ".join(title.split())
        if not title:
            raise HearthError(422, "title must not be blank", param="title", code="invalid_value")
        async with self.db.transaction() as s:
            repo = ConversationRepository(s, owner_id=user_id)
            row = await repo.get_or_404(conversation_id)
            row.title, row.title_source = title, "user"
            await self.bus.publish(
                ConversationTitled(conversation_id=row.id, user_id=user_id, title=title, source="user"),
                session=s,
            )
            counts = await repo.messages.counts([row.id])
            return ConversationOut.counted(row, counts.get(row.id, 0))

    async def delete(self, *, user_id: str, conversation_id: str) -> None:
        """Delete one of the user's conversations and its messages."""
        async with self.db.transaction() as s:
            await ConversationRepository(s, owner_id=user_id).delete(conversation_id)
            await self.bus.publish(
                ConversationDeleted(conversation_id=conversation_id, user_id=user_id), session=s
            )

    async def sweep(self, cutoff: datetime) -> int:
        """Retention: delete chat messages older than `cutoff` and conversations left without any."""
        async with self.db.transaction() as s:
            return await sweep_messages(s, cutoff)
