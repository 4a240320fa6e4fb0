"""Owner-scoped access to conversations and messages.

Every read or delete of chat data goes through `Owned`, built from one user id: the owner filter is written
once, here, so no query can forget it and another user's id is simply "not found"."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.chat.models import Conversation, Message
from hearth.platform.errors import not_found


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Owned:
    def __init__(self, session: AsyncSession, user_id: str) -> None:
        self.session = session
        self.user_id = user_id

    def conversations(self) -> Select[tuple[Conversation]]:
        return select(Conversation).where(Conversation.user_id == self.user_id)

    def messages(self) -> Select[tuple[Message]]:
        return select(Message).where(Message.user_id == self.user_id)

    async def conversation(self, conversation_id: str, *, lock: bool = False) -> Conversation:
        """The user's conversation; 404 when it does not exist or belongs to someone else."""
        query = self.conversations().where(Conversation.id == conversation_id)
        if lock:
            query = query.with_for_update()
        row = await self.session.scalar(query)
        if row is None:
            raise not_found(f"no conversation {conversation_id!r}", param="conversation_id")
        return row

    async def history(self, conversation_id: str, *, last: int | None = None) -> list[Message]:
        """The conversation's messages in order (only the `last` ones when given)."""
        query = self.messages().where(Message.conversation_id == conversation_id)
        if last is not None:
            rows = await self.session.scalars(query.order_by(Message.seq.desc()).limit(last))
            return list(reversed(rows.all()))
        return list((await self.session.scalars(query.order_by(Message.seq))).all())

    async def message(self, conversation_id: str, message_id: str) -> Message:
        row = await self.session.scalar(
            self.messages().where(Message.conversation_id == conversation_id, Message.id == message_id)
        )
        if row is None:
            raise not_found(
                f"no message {message_id!r} in conversation {conversation_id!r}", param="message_id"
            )
        return row

    async def next_seq(self, conversation_id: str) -> int:
        last = await self.session.scalar(
            select(func.max(Message.seq)).where(
                Message.conversation_id == conversation_id, Message.user_id == self.user_id
            )
        )
        return (last or 0) + 1

    async def counts(self, conversation_ids: list[str]) -> dict[str, int]:
        if not conversation_ids:
            return {}
        rows = await self.session.execute(
            select(Message.conversation_id, func.count())
            .where(Message.user_id == self.user_id, Message.conversation_id.in_(conversation_ids))
            .group_by(Message.conversation_id)
        )
        return {cid: n for cid, n in rows.all()}

    async def page(self, *, limit: int, offset: int) -> list[Conversation]:
        """The user's conversations, most recently active first."""
        rows = await self.session.scalars(
            self.conversations()
            .order_by(Conversation.updated_at.desc(), Conversation.id)
            .limit(limit)
            .offset(offset)
        )
        return list(rows.all())

    async def search(self, text: str, *, limit: int) -> list[tuple[Conversation, str]]:
        """Conversations whose title or any message contains `text` (case-insensitive), with a snippet."""
        pattern = _like(text)
        matching = (
            select(Message.id)
            .where(
                Message.conversation_id == Conversation.id,
                Message.user_id == self.user_id,
                Message.content.ilike(pattern, escape="\\"),
            )
            .correlate(Conversation)
        )
        rows = await self.session.scalars(
            self.conversations()
            .where(or_(Conversation.title.ilike(pattern, escape="\\"), exists(matching)))
            .order_by(Conversation.updated_at.desc(), Conversation.id)
            .limit(limit)
        )
        hits = []
        for conversation in rows.all():
            content = await self.session.scalar(
                self.messages()
                .where(
                    Message.conversation_id == conversation.id,
                    Message.content.ilike(pattern, escape="\\"),
                )
                .order_by(Message.seq)
                .limit(1)
                .with_only_columns(Message.content)
            )
            hits.append((conversation, _snippet(content, text) if content else conversation.title))
        return hits

    async def delete(self, conversation_id: str) -> None:
        """Delete the user's conversation and its messages; 404 when it is not theirs."""
        await self.conversation(conversation_id, lock=True)
        await self.session.execute(
            delete(Message).where(Message.conversation_id == conversation_id, Message.user_id == self.user_id)
        )
        await self.session.execute(
            delete(Conversation).where(
                Conversation.id == conversation_id, Conversation.user_id == self.user_id
            )
        )


def _snippet(content: str, text: str, width: int = 160) -> str:
    at = content.lower().find(text.lower())
    start = max(0, at - width // 3) if at >= 0 else 0
    piece = content[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(content) else "")


async def sweep_messages(session: AsyncSession, cutoff: datetime) -> int:
    """Retention, across all users: delete messages older than `cutoff`, then conversations left empty
    (a conversation always has at least one message)."""
    deleted = await session.execute(delete(Message).where(Message.created_at < cutoff))
    has_message = select(Message.id).where(Message.conversation_id == Conversation.id).correlate(Conversation)
    await session.execute(delete(Conversation).where(~exists(has_message)))
    return int(deleted.rowcount or 0)  # type: ignore[attr-defined]
