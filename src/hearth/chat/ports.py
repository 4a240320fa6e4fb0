"""What the chat context offers: a user's sessions and preferences (voice turns use both).

`SERVICE` is for chat's own routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from hearth.chat.schemas import Preferences
from hearth.platform.ports import Port

if TYPE_CHECKING:
    from hearth.chat.service import ChatService
    from hearth.chat.sessions import Session


class SessionTracker(Protocol):
    async def open(self, *, user_id: str, kind: str, metadata: dict[str, Any] | None = None) -> Session:
        """Start a session of `kind` (chat | voice) for the user."""
        ...

    async def touch(self, *, user_id: str, session_id: str) -> Session:
        """Mark the user's live session active now; 404 when missing, expired or someone else's."""
        ...


class PreferenceReader(Protocol):
    async def get(self, *, user_id: str) -> Preferences:
        """The user's chat and voice defaults (defaults until the user sets something)."""
        ...


SESSIONS: Port[SessionTracker] = Port("chat.sessions")
PREFERENCES: Port[PreferenceReader] = Port("chat.preferences")
SERVICE: Port[ChatService] = Port("chat.service")
