"""The chat context's service behind `chat.ports.SERVICE`: one façade over a turn (`turns.Turns`: user
message → optional RAG → streamed reply → both messages stored) and stored conversations
(`conversations.Conversations`: reads, search, deletes, retention). Routes stay thin; other contexts use
`preferences` and `sessions` through their ports."""

from __future__ import annotations

from datetime import datetime

from hearth.chat.conversations import Conversations
from hearth.chat.schemas import ConversationDetail, ConversationOut, MessageOut, SearchHit, SendMessage
from hearth.chat.turn import Turn
from hearth.chat.turns import Turns
from hearth.gateway.service import Caller

__all__ = ["ChatService", "Turn"]


class ChatService:
    def __init__(self, *, turns: Turns, conversations: Conversations) -> None:
        self.turns = turns
        self.conversations = conversations
        self.sessions = turns.sessions
        self.preferences = turns.preferences

    async def begin(
        self, *, user_id: str, caller: Caller, conversation_id: str | None, request: SendMessage
    ) -> Turn:
        """Check the request, retrieve RAG sources and open the model's stream (see `Turns.begin`)."""
        return await self.turns.begin(
            user_id=user_id, caller=caller, conversation_id=conversation_id, request=request
        )

    async def list_conversations(self, *, user_id: str, limit: int, offset: int) -> list[ConversationOut]:
        """The user's conversations, most recently active first."""
        return await self.conversations.list(user_id=user_id, limit=limit, offset=offset)

    async def get_conversation(self, *, user_id: str, conversation_id: str) -> ConversationDetail:
        """One of the user's conversations with all its messages."""
        return await self.conversations.get(user_id=user_id, conversation_id=conversation_id)

    async def get_message(self, *, user_id: str, conversation_id: str, message_id: str) -> MessageOut:
        """One message of one of the user's conversations."""
        return await self.conversations.message(
            user_id=user_id, conversation_id=conversation_id, message_id=message_id
        )

    async def search(self, *, user_id: str, text: str, limit: int) -> list[SearchHit]:
        """The user's conversations whose title or messages contain `text`."""
        return await self.conversations.search(user_id=user_id, text=text, limit=limit)

    async def rename_conversation(self, *, user_id: str, conversation_id: str, title: str) -> ConversationOut:
        """Set the title of one of the user's conversations."""
        return await self.conversations.rename(user_id=user_id, conversation_id=conversation_id, title=title)

    async def delete_conversation(self, *, user_id: str, conversation_id: str) -> None:
        """Delete one of the user's conversations and its messages."""
        await self.conversations.delete(user_id=user_id, conversation_id=conversation_id)

    async def sweep_messages(self, cutoff: datetime) -> int:
        """Retention: delete chat messages older than `cutoff` and conversations left without any."""
        return await self.conversations.sweep(cutoff)
