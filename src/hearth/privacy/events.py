"""The privacy context's events."""

from __future__ import annotations

from typing import ClassVar

from hearth.events.schemas import Event


class _PrivacyEvent(Event):
    context: ClassVar[str] = "privacy"


class UserErased(_PrivacyEvent):
    """A user was erased from every context. It names no one: `subject` is the pseudonym that replaced the
    user where a record stays (audit entries); `actor` is the admin who erased another user, or the same
    pseudonym when users erased themselves."""

    subject: str
    actor: str
    contexts: list[str]
