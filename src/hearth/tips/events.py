"""The tips context's event stream: profile changes, connector fetches (signals), agent pre-compute, tips
served and the user's feedback on them."""

from __future__ import annotations

from typing import ClassVar

from hearth.events.schemas import Event


class _TipsEvent(Event):
    context: ClassVar[str] = "tips"


class TipsPreferencesChanged(_TipsEvent):
    user_id: str
    fields: list[str]


class TipsContextActivated(_TipsEvent):
    user_id: str
    name: str | None  # None: no context active


class ConsentGranted(_TipsEvent):
    user_id: str
    key: str


class ConsentRevoked(_TipsEvent):
    user_id: str
    key: str
    outputs_deleted: int


class ConnectorAdded(_TipsEvent):
    user_id: str
    connector_id: str
    kind: str


class SignalsReceived(_TipsEvent):
    """One fetch's signals of one kind (ids only: the content stays in the tips tables)."""

    user_id: str
    connector_id: str
    kind: str
    count: int
    external_ids: list[str] = []  # the first 100


class ConnectorFailed(_TipsEvent):
    user_id: str
    connector_id: str
    error: str
    failures: int
    retry_in_seconds: float


class AgentOutputsComputed(_TipsEvent):
    agent_id: str
    agent_version: str
    users: int
    written: int
    errors: int


class TipServed(_TipsEvent):
    user_id: str
    tip_id: str
    contributing_agents: list[str]
    prompt_version: str
    model: str
    fallback: bool
    latency_ms: float


class TipFeedbackGiven(_TipsEvent):
    user_id: str
    tip_id: str
    action: str  # done | snooze | dismiss
    source_closed: bool = False
