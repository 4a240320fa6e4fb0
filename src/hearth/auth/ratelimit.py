"""PLACEHOLDER — replaced by the auth work (per-key request and token rate limits)."""

from __future__ import annotations

from hearth.auth.principal import Principal


class RateLimiter:
    def __init__(self, *, default_rpm: int | None = None, default_tpm: int | None = None) -> None:
        self.default_rpm = default_rpm
        self.default_tpm = default_tpm

    def check(self, principal: Principal) -> None:
        """Raise HearthError(429, Retry-After header) when the key is over its request or token budget."""

    def add_tokens(self, principal: Principal, tokens: int) -> None:
        """Charge tokens used by a finished request to the key's token budget."""
