"""What the tips context offers. `SERVICE` is for its own routes and CLI; `PRIVACY` lets the privacy
registry export and erase a user's tips data (GET /api/me/export, DELETE /api/me)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from hearth.platform.ports import Port

if TYPE_CHECKING:
    from hearth.tips.service import TipsService


class UserData(Protocol):
    async def export_user(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every row this context holds about the user, JSON-able, secrets left out."""
        ...

    async def erase_user(self, user_id: str) -> None:
        """Delete every row this context holds about the user."""
        ...


SERVICE: Port[TipsService] = Port("tips.service")
PRIVACY: Port[UserData] = Port("tips.privacy")
