"""Every context's tables, imported in one place so Alembic's autogenerate sees the whole schema."""

from hearth.agents.models import AgentRun
from hearth.audit.models import AuditEntry
from hearth.auth.models import ApiKey, User, WebSession
from hearth.bench.models import BenchRun
from hearth.chat.models import Conversation, Message, PreferencesRow, SessionRow
from hearth.events.models import ConsumedEvent, OutboxEvent
from hearth.gateway.models import ModelOverride
from hearth.notify.models import (
    Delivery,
    DeliveryAttempt,
    InboxItem,
    Notification,
    NotifyPreferences,
    PushSubscription,
)
from hearth.planner.models import BenchmarkRow, CatalogModel, GpuProfile
from hearth.platform.kit.leases import WorkLease
from hearth.rag.models import Collection, CollectionShare, Document, IngestJob
from hearth.tips.models import (
    AgentOutput,
    TipFeedback,
    TipsConnector,
    TipsConsent,
    TipsConsentLog,
    TipsContext,
    TipScore,
    TipsCredential,
    TipsPreferences,
    TipsSignal,
)
from hearth.tips.models import AgentRun as TipsAgentRun
from hearth.usage.models import UsageDay
from hearth.voice.models import VoiceRequest, VoiceResponse
from hearth.workflows.models import Artifact, Experiment, PipelineRow, Run, StepLog, StepRow

__all__ = [
    "AgentOutput",
    "AgentRun",
    "ApiKey",
    "Artifact",
    "AuditEntry",
    "BenchRun",
    "BenchmarkRow",
    "CatalogModel",
    "Collection",
    "CollectionShare",
    "ConsumedEvent",
    "Conversation",
    "Delivery",
    "DeliveryAttempt",
    "Document",
    "Experiment",
    "GpuProfile",
    "InboxItem",
    "IngestJob",
    "Message",
    "ModelOverride",
    "Notification",
    "NotifyPreferences",
    "OutboxEvent",
    "PipelineRow",
    "PreferencesRow",
    "PushSubscription",
    "Run",
    "SessionRow",
    "StepLog",
    "StepRow",
    "TipFeedback",
    "TipScore",
    "TipsAgentRun",
    "TipsConnector",
    "TipsConsent",
    "TipsConsentLog",
    "TipsContext",
    "TipsCredential",
    "TipsPreferences",
    "TipsSignal",
    "UsageDay",
    "User",
    "VoiceRequest",
    "VoiceResponse",
    "WebSession",
    "WorkLease",
]
