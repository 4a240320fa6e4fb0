"""Who is calling: resolved once per request from the Bearer key, cached by the auth service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from hearth.config import Priority

if TYPE_CHECKING:
    from hearth.auth.models import ApiKey, User


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    username: str
    role: str  # "admin" | "user"
    key_id: str
    priority: Priority
    rpm_limit: int | None
    tpm_limit: int | None

    @classmethod
    def of_key(cls, user: User, key: ApiKey) -> Principal:
        """The caller behind an API key (a Bearer request, or a web session signed in with that key)."""
        return cls(
            user_id=user.id,
            username=user.username,
            role=user.role,
            key_id=key.id,
            priority=cast(Priority, key.priority),
            rpm_limit=key.rpm_limit,
            tpm_limit=key.tpm_limit,
        )

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
