"""What the gateway offers contexts besides calling models (`Gateway.chat`, `embed`, …): changing its routes
at run time. Backend errors never cross this boundary: the gateway translates them into `HearthError`s."""

from __future__ import annotations

from typing import Protocol

from hearth.platform.ports import Port


class AliasRegistry(Protocol):
    def has_alias(self, name: str) -> bool: ...

    async def add_alias(self, name: str, *, base_url: str, model: str, kind: str, description: str) -> None:
        """Route `name` to the OpenAI-compatible server at base_url serving `model` (ValueError if taken)."""
        ...

    async def remove_alias(self, name: str) -> None:
        """Stop routing `name` and close the backends only it used; nothing when it does not exist."""
        ...


ALIASES: Port[AliasRegistry] = Port("gateway.aliases")
