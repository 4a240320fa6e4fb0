"""What the notify context offers: `Notifier` (other contexts notify a user: the tips context's tips),
and `SERVICE` for its own routes."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Protocol

from hearth.platform.ports import Port

if TYPE_CHECKING:
    from hearth.notify.schemas import NotifyResult
    from hearth.notify.service import NotifyService


class Notifier(Protocol):
    async def notify(
        self,
        user_id: str,
        *,
        topic: str,
        dedupe_key: str,
        title: str,
        body: str,
        url: str | None = None,
        channels: Collection[str] | None = None,
    ) -> NotifyResult:
        """Notify the user on their channels (only those in `channels` when given: the caller's consents):
        each delivery sent now, deferred past their quiet hours, or retried; nothing when the same
        `dedupe_key` was notified within the dedupe window."""
        ...


NOTIFIER: Port[Notifier] = Port("notify.notifier")
SERVICE: Port[NotifyService] = Port("notify.service")
