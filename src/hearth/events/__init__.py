"""Domain events: typed schemas, a durable SQL outbox, in-process delivery or NATS JetStream."""

from hearth.events.bus import Counters, EventBus
from hearth.events.outbox import Retry
from hearth.events.schemas import (
    Event,
    InferenceCompleted,
    InferenceFailed,
    InferenceRequested,
    UnknownEventType,
    event_class,
    registered_events,
)

__all__ = [
    "Counters",
    "Event",
    "EventBus",
    "InferenceCompleted",
    "InferenceFailed",
    "InferenceRequested",
    "Retry",
    "UnknownEventType",
    "event_class",
    "registered_events",
]
