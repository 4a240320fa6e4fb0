"""Personal data across contexts: who holds what about a user, so it can be exported and erased as one.

Every context that stores something about a user registers a `PersonalDataHolder` in its wiring
(`platform.personal_data.register(holder)`). The privacy context asks each of them, in turn, for the user's
rows (export) and to forget the user (erasure). A holder needs only `context`, `export_user` and
`erase_user`; `user_files` (files on disk to put in the archive) is optional, so a context that keeps only
rows plugs in with two methods.

Erasure order matters: the contexts erase first, in the reverse of their registration (start) order, so a
context that uses another's port forgets the user before its provider does; then the platform's own holders
run, registered with `last=True`: auth (the user row, which the others may still look up by id) and finally
the event outbox, so the events the erasures themselves published are scrubbed too.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import inspect as sa_inspect

log = logging.getLogger("hearth.privacy")

Rows = dict[str, list[dict[str, Any]]]  # one list of JSON-ready rows per kind ("conversations", …)

# The name that replaces the erased user where a record about someone else must stay (an audit entry of
# an admin action, an event the user only acted in): random per erasure, so nothing links it back.
_pseudonym: ContextVar[str | None] = ContextVar("hearth_erasure_pseudonym", default=None)


def new_pseudonym() -> str:
    return f"erased-{secrets.token_hex(6)}"


def pseudonym() -> str:
    """The running erasure's pseudonym (one per erasure, shared by every holder), or a fresh one."""
    return _pseudonym.get() or new_pseudonym()


@runtime_checkable
class PersonalDataHolder(Protocol):
    """What a context implements to take part in export and erasure (`user_files` is optional)."""

    context: str

    async def export_user(self, user_id: str) -> Rows:
        """Everything the context holds about the user, as JSON-ready rows per kind (no secrets)."""
        ...

    async def erase_user(self, user_id: str) -> None:
        """Delete (or pseudonymise, where a record must stay) everything the context holds about the user;
        idempotent: a second call finds nothing and succeeds."""
        ...


def row_dict(row: Any, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """An ORM row's columns as JSON-ready values (dates as ISO 8601), minus `exclude`."""
    out: dict[str, Any] = {}
    for attr in sa_inspect(row).mapper.column_attrs:
        if attr.key in exclude:
            continue
        value = getattr(row, attr.key)
        out[attr.key] = value.isoformat() if isinstance(value, datetime | date) else value
    return out


class HoldsFiles(Protocol):
    async def user_files(self, user_id: str) -> list[tuple[str, Path]]:
        """The user's files on disk: (path inside the archive, file)."""
        ...


class _Named:
    """A holder under a given context name; `user_files` only when the holder has it."""

    def __init__(self, context: str, holder: Any) -> None:
        self.context = context
        self.export_user = holder.export_user
        self.erase_user = holder.erase_user
        if hasattr(holder, "user_files"):
            self.user_files = holder.user_files


class PersonalDataRegistry:
    """The holders of the running platform, in erasure order on demand."""

    def __init__(self) -> None:
        self._contexts: list[PersonalDataHolder] = []
        self._last: list[PersonalDataHolder] = []

    def register(self, holder: Any, *, context: str | None = None, last: bool = False) -> None:
        """Add a context's holder. `context` names it when the holder has no `context` attribute (any
        object with `export_user` and `erase_user` plugs in); `last` is for the platform's own (auth,
        events) that must erase after every context."""
        if context is not None:
            holder = _Named(context, holder)
        if not isinstance(holder, PersonalDataHolder):
            raise TypeError(f"{holder!r} lacks context, export_user or erase_user")
        if any(h.context == holder.context for h in self.holders):
            raise ValueError(f"a personal-data holder for {holder.context!r} is already registered")
        (self._last if last else self._contexts).append(holder)

    @property
    def holders(self) -> Sequence[PersonalDataHolder]:
        """Every holder, in export order (registration order, the platform's last)."""
        return [*self._contexts, *self._last]

    @property
    def erasure_order(self) -> Sequence[PersonalDataHolder]:
        return [*reversed(self._contexts), *self._last]

    async def export(self, user_id: str) -> dict[str, Rows]:
        """Every holder's rows about the user, by context."""
        return {holder.context: await holder.export_user(user_id) for holder in self.holders}

    async def files(self, user_id: str) -> list[tuple[str, Path]]:
        """Every holder's files about the user, archive paths prefixed with the context's name."""
        found: list[tuple[str, Path]] = []
        for holder in self.holders:
            user_files = getattr(holder, "user_files", None)
            if user_files is None:
                continue
            for name, path in await user_files(user_id):
                found.append((f"{holder.context}/{name}", path))
        return found

    async def erase(self, user_id: str, *, alias: str | None = None) -> list[str]:
        """Erase the user from every holder, in erasure order; the contexts that took part. `alias` is the
        pseudonym the holders use where a record must stay (`pseudonym()` inside them).

        A holder that fails stops the erasure (the error propagates) with the ones before it done: every
        holder is idempotent, so running the erasure again finishes it. It does run twice: what arrived
        during the first pass (a usage window the gateway published just before forgetting the user, and
        the ledger recorded after the usage context had erased) is caught by the second, which finds the
        user row gone, so nothing can add to it any more."""
        token = _pseudonym.set(alias or new_pseudonym())
        try:
            done = []
            for holder in self.erasure_order:
                await holder.erase_user(user_id)
                log.info("user erased from a context", extra={"context": holder.context})
                done.append(holder.context)
            for holder in self.erasure_order:
                await holder.erase_user(user_id)
            return done
        finally:
            _pseudonym.reset(token)
