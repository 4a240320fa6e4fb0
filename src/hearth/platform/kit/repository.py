"""Repositories: the queries every context repeats, written once.

    class ConversationRepository(OwnedRepository[Conversation]):
        model = Conversation
        noun = "conversation"

    repo = ConversationRepository(session, owner_id=user.user_id)
    conversation = await repo.get_or_404(conversation_id)     # another user's id is simply "not found"

`OwnedRepository` adds the owner filter to every statement it builds (`select()`), so a query written on it
cannot forget it. Contexts add their own query methods on top."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from hearth.platform.errors import not_found

M = TypeVar("M")
V = TypeVar("V")
R = TypeVar("R")

# Under every database's bound-parameter cap (SQLite's is the lowest that matters).
IN_CHUNK = 500
# The largest integer SQLite and PostgreSQL (bigint) store: the bound of every integer a client may send
# into a query or a row, so a larger one is a 422, not an overflow inside the database.
MAX_SQL_INT = 2**63 - 1


def in_chunks(values: Sequence[V], size: int = IN_CHUNK) -> Iterator[Sequence[V]]:
    """`values` in slices small enough for one `IN (...)` each."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def or_404(row: R | None, message: str, *, param: str | None = None, code: str = "not_found") -> R:
    """`row`, or a 404 in the API's error shape when the lookup found nothing."""
    if row is None:
        raise not_found(message, param=param, code=code)
    return row


class Repository(Generic[M]):
    """Reads of one table by primary key `id`, within the caller's session."""

    model: ClassVar[type[Any]]
    noun: ClassVar[str] = "object"  # how a 404 names the missing row
    param: ClassVar[str | None] = None  # the request field a 404 points at
    missing: ClassVar[str] = "no {noun} {id!r}"  # the 404's message

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def id_column(self) -> InstrumentedAttribute[Any]:
        return self.model.id

    def select(self) -> Select[tuple[M]]:
        """The base statement every read starts from (scoped by mixins)."""
        return select(self.model)

    async def get(self, id: str, *, lock: bool = False) -> M | None:
        stmt = self.select().where(self.id_column == id)
        if lock:
            stmt = stmt.with_for_update()
        return await self.session.scalar(stmt)

    async def get_or_404(self, id: str, *, lock: bool = False) -> M:
        message = self.missing.format(noun=self.noun, id=id)
        return or_404(await self.get(id, lock=lock), message, param=self.param)

    async def get_many(self, ids: Iterable[str]) -> list[M]:
        """The rows with these ids (missing ones left out), in chunks under the bound-parameter cap."""
        unique = list(dict.fromkeys(ids))
        rows: list[M] = []
        for chunk in in_chunks(unique):
            rows.extend((await self.session.scalars(self.select().where(self.id_column.in_(chunk)))).all())
        return rows

    async def list(self, stmt: Select[tuple[M]] | None = None, *, limit: int, offset: int = 0) -> list[M]:
        """One page of `stmt` (default: every visible row, by id)."""
        stmt = self.select().order_by(self.id_column) if stmt is None else stmt
        return list((await self.session.scalars(stmt.limit(limit).offset(offset))).all())


class OwnedRepository(Repository[M]):
    """A repository of one user's rows: every statement it builds carries the owner filter."""

    owner_column_name: ClassVar[str] = "user_id"

    def __init__(self, session: AsyncSession, *, owner_id: str) -> None:
        super().__init__(session)
        self.owner_id = owner_id

    @property
    def owner_column(self) -> InstrumentedAttribute[Any]:
        return getattr(self.model, self.owner_column_name)

    def select(self) -> Select[tuple[M]]:
        return super().select().where(self.owner_column == self.owner_id)
