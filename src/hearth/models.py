"""Every context's tables, imported in one place for Alembic."""

from hearth.auth.models import ApiKey, User
from hearth.events.models import ConsumedEvent, OutboxEvent

__all__ = ["ApiKey", "ConsumedEvent", "OutboxEvent", "User"]
