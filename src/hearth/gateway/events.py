"""Gateway (inference) events. The class name is the wire type: renaming one breaks stored events.

Per-request events (`InferenceCompleted`, `InferenceFailed`) are opt-in (`HEARTH_GATEWAY_EVENTS`): an outbox
row per request costs gateway throughput. `InferenceUsage` is always published: the gateway sums usage in
memory and publishes one event per (user, key, alias) and window, a few rows every few seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from hearth.events.schemas import Event


class _InferenceEvent(Event):
    context: ClassVar[str] = "inference"


class InferenceRequested(_InferenceEvent):
    alias: str
    deployment: str
    request_id: str
    user_id: str | None = None
    priority: str
    stream: bool


class InferenceCompleted(_InferenceEvent):
    alias: str
    deployment: str
    request_id: str
    user_id: str | None = None
    status: int
    latency_ms: float
    ttft_ms: float | None = None
    prompt_tokens: int
    completion_tokens: int


class InferenceFailed(_InferenceEvent):
    alias: str
    request_id: str
    user_id: str | None = None
    status: int
    error: str


class InferenceUsage(Event):
    """Gateway calls of one caller on one alias during [window_start, window_end): summed, not per request.

    Its own stream (`usage`), so that the per-request `inference` stream keeps one message per request."""

    context: ClassVar[str] = "usage"

    user_id: str  # "system" for the platform's own calls (ingestion embeddings, planner extraction)
    key_id: str | None = None  # the API key, when the call came in with one
    alias: str
    window_start: datetime
    window_end: datetime
    requests: int  # calls, failed ones included
    failures: int  # calls that ended in an error answer
    prompt_tokens: int
    completion_tokens: int


class _ModelsEvent(Event):
    """Admin changes to the model catalogue (`/api/admin/models`): audited."""

    context: ClassVar[str] = "models"


class ModelBackendChanged(_ModelsEvent):
    name: str
    change: str  # added | changed | removed
    type: str | None = None  # the backend type; None when removed
    url: str | None = None  # an OpenAI-compatible backend's base_url (never its key)
    actor: str | None = None  # the admin's username


class ModelAliasChanged(_ModelsEvent):
    name: str
    change: str  # added | changed | removed
    kind: str | None = None
    deployments: list[str] = []  # "backend" or "backend/model", in the order they are tried
    actor: str | None = None
