"""PLACEHOLDER — replaced by the auth work."""

from __future__ import annotations

from hearth.auth.principal import Principal
from hearth.platform.db import Database


class AuthService:
    def __init__(self, db: Database, *, cache_seconds: float = 2.0) -> None:
        self.db = db

    async def authenticate(self, token: str) -> Principal | None:
        return Principal("u", "dev", "admin", "k", "standard", None, None)
