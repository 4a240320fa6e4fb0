"""User preferences: the model, RAG default, collection and voice applied when a request does not say."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hearth.chat.events import PreferencesUpdated
from hearth.chat.models import PreferencesRow
from hearth.chat.schemas import Preferences, PreferencesUpdate
from hearth.events.bus import EventBus
from hearth.platform.db import Database, utcnow

FIELDS = ("model", "rag_enabled", "collection", "voice")


class PreferencesService:
    """Behind `chat.ports.PREFERENCES`: one row per user, defaults until the user sets something."""

    def __init__(
        self, db: Database, bus: EventBus, *, check_model: Callable[[str], None] | None = None
    ) -> None:
        self.db = db
        self.bus = bus
        self.check_model = check_model  # raises a HearthError for an alias that is not a chat model

    async def get(self, *, user_id: str) -> Preferences:
        """The user's preferences (the defaults when never set)."""
        async with self.db.sessions() as s:
            row = await s.get(PreferencesRow, user_id)
            return Preferences.model_validate(row) if row else Preferences()

    async def update(self, *, user_id: str, changes: PreferencesUpdate) -> Preferences:
        """Set the fields present in `changes` (null clears one); the others keep their values."""
        values = {name: getattr(changes, name) for name in changes.model_fields_set}
        if values.get("model") is not None and self.check_model is not None:
            self.check_model(values["model"])
        if "rag_enabled" in values and values["rag_enabled"] is None:
            values["rag_enabled"] = False
        for attempt in range(2):
            try:
                async with self.db.transaction() as s:
                    row = await s.scalar(
                        select(PreferencesRow).where(PreferencesRow.user_id == user_id).with_for_update()
                    )
                    if row is None:
                        row = PreferencesRow(user_id=user_id, rag_enabled=False)
                        s.add(row)
                    for name, value in values.items():
                        setattr(row, name, value)
                    row.updated_at = utcnow()
                    await s.flush()
                    await self.bus.publish(PreferencesUpdated(user_id=user_id), session=s)
                    return Preferences.model_validate(row)
            except IntegrityError:
                if attempt:  # a concurrent first write won twice in a row: give up loudly
                    raise
        raise AssertionError("unreachable")
