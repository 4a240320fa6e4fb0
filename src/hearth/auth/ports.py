"""What the auth context offers other contexts: who users are, by id or by name (never its tables)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from hearth.platform.ports import Port


class UserDirectory(Protocol):
    async def usernames(self, user_ids: Collection[str]) -> dict[str, str]:
        """Usernames by user id, for the ids that exist."""
        ...

    async def user_id_of(self, username: str) -> str | None:
        """The id of the user with this name, or None when there is none."""
        ...


USERS: Port[UserDirectory] = Port("auth.users")
