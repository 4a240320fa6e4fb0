"""The chat part of a user's personal data: conversations, their messages, preferences and sessions (SQL
rows or Redis hashes, whichever store is configured)."""

from __future__ import annotations

from sqlalchemy import delete, or_, select

from hearth.chat.models import Conversation, Message, PreferencesRow
from hearth.chat.sessions import Sessions
from hearth.platform.db import Database
from hearth.platform.personal_data import Rows, row_dict


class ChatPersonalData:
    context = "chat"

    def __init__(self, db: Database, sessions: Sessions) -> None:
        self.db = db
        self.sessions = sessions

    async def export_user(self, user_id: str) -> Rows:
        async with self.db.sessions() as s:
            conversations = (
                await s.scalars(
                    select(Conversation)
                    .where(Conversation.user_id == user_id)
                    .order_by(Conversation.created_at)
                )
            ).all()
            ids = [c.id for c in conversations]
            messages = (
                await s.scalars(
                    select(Message)
                    .where(or_(Message.user_id == user_id, Message.conversation_id.in_(ids)))
                    .order_by(Message.conversation_id, Message.seq)
                )
            ).all()
            preferences = await s.get(PreferencesRow, user_id)
        return {
            "conversations": [row_dict(c) for c in conversations],
            "messages": [row_dict(m) for m in messages],
            "preferences": [row_dict(preferences)] if preferences is not None else [],
            "sessions": [
                {
                    "id": x.id,
                    "kind": x.kind,
                    "started_at": x.started_at.isoformat(),
                    "last_activity": x.last_activity.isoformat(),
                    "metadata": x.metadata,
                }
                for x in await self.sessions.all_of(user_id=user_id)
            ],
        }

    async def erase_user(self, user_id: str) -> None:
        async with self.db.transaction() as s:
            ids = select(Conversation.id).where(Conversation.user_id == user_id)
            await s.execute(
                delete(Message).where(or_(Message.user_id == user_id, Message.conversation_id.in_(ids)))
            )
            await s.execute(delete(Conversation).where(Conversation.user_id == user_id))
            await s.execute(delete(PreferencesRow).where(PreferencesRow.user_id == user_id))
        await self.sessions.forget_user(user_id=user_id)
