"""Subscriptions and delivery to one handler, with the optional idempotency ledger."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from hearth.events import outbox
from hearth.events.schemas import Event
from hearth.platform.db import Database

Handler = Callable[..., Awaitable[Any]]
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class _Duplicate(Exception):
    pass


@dataclass(eq=False)
class Subscription:
    consumer: str
    handler: Handler
    contexts: frozenset[str] | None = None
    types: frozenset[str] | None = None
    idempotent: bool = False
    wants_session: bool = False

    @classmethod
    def create(
        cls,
        consumer: str,
        handler: Handler,
        *,
        contexts: set[str] | None,
        types: set[str] | None,
        idempotent: bool,
    ) -> Subscription:
        if not _NAME.match(consumer):
            raise ValueError(f"consumer name {consumer!r} must be 1-64 chars of [A-Za-z0-9_.-]")
        wants_session = _positional_arity(handler) >= 2
        if wants_session and not idempotent:
            raise ValueError("only idempotent handlers get a session (it is the ledger's transaction)")
        return cls(
            consumer=consumer,
            handler=handler,
            contexts=frozenset(contexts) if contexts is not None else None,
            types=frozenset(types) if types is not None else None,
            idempotent=idempotent,
            wants_session=wants_session,
        )

    def matches(self, context: str, type_name: str) -> bool:
        return (self.contexts is None or context in self.contexts) and (
            self.types is None or type_name in self.types
        )

    async def deliver(self, db: Database, event: Event) -> bool:
        """Run the handler; False when an idempotent consumer had already handled this event."""
        if not self.idempotent:
            await self.handler(event)
            return True
        try:
            # The ledger row commits with the handler's own writes (when it takes the session), so a
            # crash between "handled" and "recorded" cannot happen for those writes.
            async with db.transaction() as session:
                if await outbox.already_consumed(session, self.consumer, event.id):
                    raise _Duplicate
                if self.wants_session:
                    await self.handler(event, session)
                    await session.flush()  # the handler's own integrity errors are its failures
                else:
                    await self.handler(event)
                outbox.record_consumed(session, self.consumer, event.id)
                try:
                    await session.flush()
                except IntegrityError as exc:  # a concurrent redelivery recorded it first
                    raise _Duplicate from exc
        except _Duplicate:
            return False
        return True


def _positional_arity(handler: Handler) -> int:
    try:
        params = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds and p.default is p.empty)
