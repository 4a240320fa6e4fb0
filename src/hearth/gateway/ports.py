"""What the gateway offers contexts besides calling models (`Gateway.chat`, `embed`, …): changing its routes
at run time. Backend errors never cross this boundary: the gateway translates them into `HearthError`s."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from hearth.platform.ports import Port

if TYPE_CHECKING:
    from hearth.config import ModelsConfig
    from hearth.gateway.admin import ModelAdmin


class AliasRegistry(Protocol):
    def has_alias(self, name: str) -> bool: ...

    async def add_alias(self, name: str, *, base_url: str, model: str, kind: str, description: str) -> None:
        """Route `name` to the OpenAI-compatible server at base_url serving `model` (ValueError if taken)."""
        ...

    async def remove_alias(self, name: str) -> None:
        """Stop routing `name` and close the backends only it used; nothing when it does not exist."""
        ...

    @property
    def config(self) -> ModelsConfig:
        """The catalogue served now (backends and aliases)."""
        ...

    async def reconfigure(self, models: ModelsConfig) -> None:
        """Serve `models` from now on; unchanged backends and deployments keep running (and their health).
        ValueError when a new backend cannot start, and then nothing changed."""
        ...

    def describe(self) -> list[dict[str, Any]]:
        """Every alias as GET /v1/models shows it: real model names, engines, health, the one serving now."""
        ...


ALIASES: Port[AliasRegistry] = Port("gateway.aliases")
SERVICE: Port[ModelAdmin] = Port("gateway.admin")  # for the gateway's own admin routes
