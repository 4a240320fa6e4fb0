"""Typed events and the registry that turns a type name back into its class.

Adding an event is a small class: subclass the context's base (or `Event` with a `context`), add fields.
The class name is the wire type name, so renaming a class is a breaking change for stored events.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from hearth.platform.db import new_id, utcnow

_REGISTRY: dict[str, type[Event]] = {}


class UnknownEventType(LookupError):
    """A payload names a type this process has not imported (newer producer, or a removed class)."""


class Event(BaseModel):
    """Base of every event. Subclasses set `context` (their stream) once, usually on a per-context base."""

    # Unknown fields are ignored so an older consumer can read a newer producer's payload.
    model_config = ConfigDict(frozen=True, extra="ignore")

    context: ClassVar[str] = ""

    id: str = Field(default_factory=new_id)
    occurred_at: datetime = Field(default_factory=utcnow)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: object) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # Abstract per-context bases (name starting with "_") and context-less classes are not wire types.
        if cls.context and not cls.__name__.startswith("_"):
            _register(cls)

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__


def _register(cls: type[Event]) -> None:
    name = cls.__name__
    if len(name) > 64:
        raise TypeError(f"event type name {name!r} is longer than the outbox column (64)")
    existing = _REGISTRY.get(name)
    if existing is not None and (existing.__module__, existing.__qualname__) != (
        cls.__module__,
        cls.__qualname__,
    ):
        raise TypeError(f"event type {name!r} is already defined by {existing.__module__}")
    _REGISTRY[name] = cls


def event_class(type_name: str) -> type[Event]:
    try:
        return _REGISTRY[type_name]
    except KeyError:
        raise UnknownEventType(type_name) from None


def registered_events() -> dict[str, type[Event]]:
    return dict(_REGISTRY)


def known_contexts() -> set[str]:
    return {cls.context for cls in _REGISTRY.values()}
