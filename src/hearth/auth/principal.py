"""Who is calling: resolved once per request from the Bearer key, cached by the auth service."""

from __future__ import annotations

from dataclasses import dataclass

from hearth.config import Priority


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    username: str
    role: str  # "admin" | "user"
    key_id: str
    priority: Priority
    rpm_limit: int | None
    tpm_limit: int | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
