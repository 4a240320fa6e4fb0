"""Owner-scoped access to conversations and messages, on the kit's `OwnedRepository`.

Every read or delete of one user's chat data goes through these repositories, built from one user id: the
owner filter is in every statement they build, so no query can forget it and another user's id is simply
"not found". Retention (`sweep_messages`) is the one query across all users."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.chat.models import Conversation, Message
from hearth.platform.kit.repository import OwnedRepository, or_404


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class MessageRepository(OwnedRepository[Message]):
    model = Message
    noun = "message"
    param = "message_id"

    async def history(self, conversation_id: str, *, last: int | None = None) -> list[Message]:
        """The conversation's messages in order (only the `last` ones when given)."""
        stmt = self.select().where(Message.conversation_id == conversation_id)
        if last is not None:
            rows = await self.session.scalars(stmt.order_by(Message.seq.desc()).limit(last))
            return list(reversed(rows.all()))
        return list((await self.session.scalars(stmt.order_by(Message.seq))).all())

    async def in_conversation_or_404(self, conversation_id: str, message_id: str) -> Message:
        """One message of one conversation; 404 naming both when it is not the user's."""
        row = await self.session.scalar(
            self.select().where(Message.conversation_id == conversation_id, Message.id == message_id)
        )
        message = f"no message {message_id!r} in conversation {conversation_id!r}"
        return or_404(row, message, param=self.param)

    async def next_seq(self, conversation_id: str) -> int:
        """The position the conversation's next message takes."""
        last = await self.session.scalar(
            self.select()
            .with_only_columns(func.max(Message.seq))
            .where(Message.conversation_id == conversation_id)
        )
        return (last or 0) + 1

    async def counts(self, conversation_ids: list[str]) -> dict[str, int]:
        """How many messages each of these conversations holds (absent: none)."""
        if not conversation_ids:
            return {}
        rows = await self.session.execute(
            self.select()
            .with_only_columns(Message.conversation_id, func.count())
            .where(Message.conversation_id.in_(conversation_ids))
            .group_by(Message.conversation_id)
        )
        return {cid: n for cid, n in rows.all()}

    async def first_matching(self, conversation_id: str, pattern: str) -> str | None:
        """The text of the conversation's first message matching the LIKE `pattern`."""
        return await self.session.scalar(
            self.select()
            .with_only_columns(Message.content)
            .where(Message.conversation_id == conversation_id, Message.content.ilike(pattern, escape="\\"))
            .order_by(Message.seq)
            .limit(1)
        )


class ConversationRepository(OwnedRepository[Conversation]):
    model = Conversation
    noun = "conversation"
    param = "conversation_id"

    def __init__(self, session: AsyncSession, *, owner_id: str) -> None:
        super().__init__(session, owner_id=owner_id)
        self.messages = MessageRepository(session, owner_id=owner_id)

    async def page(self, *, limit: int, offset: int) -> list[Conversation]:
        """The user's conversations, most recently active first."""
        stmt = self.select().order_by(Conversation.updated_at.desc(), Conversation.id)
        return await self.list(stmt, limit=limit, offset=offset)

    async def pending_title(self, conversation_id: str) -> Conversation | None:
        """The conversation, locked, if it still waits for its title."""
        return await self.session.scalar(
            self.select()
            .where(Conversation.id == conversation_id, Conversation.title_source == "pending")
            .with_for_update()
        )

    async def search(self, text: str, *, limit: int) -> list[tuple[Conversation, str]]:
        """Conversations whose title or any message contains `text` (case-insensitive), with a snippet."""
        pattern = _like(text)
        matching = (
            self.messages.select()
            .with_only_columns(Message.id)
            .where(Message.conversation_id == Conversation.id, Message.content.ilike(pattern, escape="\\"))
            .correlate(Conversation)
        )
        stmt = (
            self.select()
            .where(or_(Conversation.title.ilike(pattern, escape="\\"), exists(matching)))
            .order_by(Conversation.updated_at.desc(), Conversation.id)
        )
        hits = []
        for conversation in await self.list(stmt, limit=limit):
            content = await self.messages.first_matching(conversation.id, pattern)
            hits.append((conversation, _snippet(content, text) if content else conversation.title))
        return hits

    async def delete(self, conversation_id: str) -> None:
        """Delete the user's conversation and its messages; 404 when it is not theirs."""
        await self.get_or_404(conversation_id, lock=True)
        await self.session.execute(
            delete(Message).where(
                Message.conversation_id == conversation_id, Message.user_id == self.owner_id
            )
        )
        await self.session.execute(
            delete(Conversation).where(
                Conversation.id == conversation_id, Conversation.user_id == self.owner_id
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
