"""Every context's tables, imported in one place so Alembic's autogenerate sees the whole schema."""

from hearth.audit.models import AuditEntry
from hearth.auth.models import ApiKey, User, WebSession
from hearth.chat.models import Conversation, Message, PreferencesRow, SessionRow
from hearth.events.models import ConsumedEvent, OutboxEvent
from hearth.gateway.models import ModelOverride
from hearth.planner.models import BenchmarkRow, CatalogModel, GpuProfile
from hearth.rag.models import Collection, CollectionShare, Document, IngestJob
from hearth.usage.models import UsageDay
from hearth.voice.models import VoiceRequest, VoiceResponse
from hearth.workflows.models import Artifact, Experiment, PipelineRow, Run, StepLog, StepRow

__all__ = [
    "ApiKey",
    "Artifact",
    "AuditEntry",
    "BenchmarkRow",
    "CatalogModel",
    "Collection",
    "CollectionShare",
    "ConsumedEvent",
    "Conversation",
    "Document",
    "Experiment",
    "GpuProfile",
    "IngestJob",
    "Message",
    "ModelOverride",
    "OutboxEvent",
    "PipelineRow",
    "PreferencesRow",
    "Run",
    "SessionRow",
    "StepLog",
    "StepRow",
    "UsageDay",
    "User",
    "VoiceRequest",
    "VoiceResponse",
    "WebSession",
]
