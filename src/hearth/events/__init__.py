"""Domain events: typed schemas, a durable SQL outbox, in-process delivery or NATS JetStream.

Each context declares its own events in its `events.py` (gateway, rag, chat, voice, planner, auth)."""

from hearth.events.bus import Counters, EventBus
from hearth.events.outbox import Retry
from hearth.events.schemas import Event, UnknownEventType, event_class, registered_events

__all__ = ["Counters", "Event", "EventBus", "Retry", "UnknownEventType", "event_class", "registered_events"]
