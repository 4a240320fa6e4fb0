"""PLACEHOLDER — replaced by the events work."""

from __future__ import annotations

from hearth.platform.db import Database


class EventBus:
    def __init__(self, db: Database, *, nats_url: str | None = None) -> None:
        self.db = db

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, event, *, session=None) -> None: ...  # noqa: ANN001
