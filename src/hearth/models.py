"""Every context's tables, imported in one place so Alembic's autogenerate sees the whole schema."""

from hearth.audit.models import AuditEntry
from hearth.auth.models import ApiKey, User, WebSession
from hearth.chat.models import Conversation, Message, PreferencesRow, SessionRow
from hearth.events.models import ConsumedEvent, OutboxEvent
from hearth.gateway.models import ModelOverride
from hearth.planner.models import BenchmarkRow, CatalogModel, GpuProfile
from hearth.platform.kit.leases import WorkLease
from hearth.rag.models import Collection, CollectionShare, Document, IngestJob
from hearth.usage.models import UsageDay
from hearth.voice.models import VoiceRequest, VoiceResponse

__all__ = [
    "ApiKey",
    "AuditEntry",
    "BenchmarkRow",
    "CatalogModel",
    "Collection",
    "CollectionShare",
    "ConsumedEvent",
    "Conversation",
    "Document",
    "GpuProfile",
    "IngestJob",
    "Message",
    "ModelOverride",
    "OutboxEvent",
    "PreferencesRow",
    "SessionRow",
    "UsageDay",
    "User",
    "VoiceRequest",
    "VoiceResponse",
    "WebSession",
    "WorkLease",
]
