"""Who may read what: collections a user owns or that are shared with them, and the documents and jobs in
them. Every read of per-user rag data starts here, so no query forgets the visibility filter."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import BindParameter, ColumnElement, Select, bindparam, or_, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.platform.db import Database
from hearth.platform.errors import HearthError
from hearth.platform.kit.repository import Repository, or_404
from hearth.rag.active import sqlite_file, sqlite_rows
from hearth.rag.models import Collection, CollectionShare, Document, IngestJob


def visible_to(user_id: str | BindParameter[Any]) -> ColumnElement[bool]:
    """The one visibility filter: collections owned by the user or shared with them."""
    shared = select(CollectionShare.collection_id).where(CollectionShare.user_id == user_id)
    return or_(Collection.owner_id == user_id, Collection.id.in_(shared))


def _by_ref(ref: str | BindParameter[Any]) -> ColumnElement[bool]:
    return or_(Collection.id == ref, Collection.name == ref)


def _pick(rows: Sequence[Any], ref: str, user_id: str) -> Any:
    """Of the visible collections matching `ref` (404 when none): an id match beats a name match, and the
    user's own collection beats one shared under the same name."""
    or_404(rows or None, f"collection {ref!r} not found", param="collection")
    return min(rows, key=lambda c: (c.id != ref, c.owner_id != user_id))


# `visible_collection_id`'s query: the same filter as the repository's, as one Core statement compiled once.
_USER, _REF = bindparam("user"), bindparam("ref")
_LOOKUP = select(Collection.id, Collection.owner_id).where(visible_to(_USER), _by_ref(_REF))
_LOOKUP_SQLITE = _LOOKUP.compile(dialect=sqlite.dialect())
_LOOKUP_SQL = str(_LOOKUP_SQLITE)
_LOOKUP_ORDER = list(_LOOKUP_SQLITE.positiontup or ())


async def visible_collection_id(db: Database, *, user_id: str, ref: str) -> str:
    """The id of a collection visible to the user, by id or name (404 otherwise): `CollectionRepository.find`
    for the query path, without an ORM session. On SQLite it runs on the event loop's own read-only
    connection: a lookup of a few rows by index, where a session's transaction took several hops to
    aiosqlite's thread and a commit (11 ms p50 on 2 cores at load average 9), and even a single hop to a
    worker thread waits for a core under load. Only when the file is locked (a WAL reader almost never is)
    does it wait, in a worker thread."""
    path = sqlite_file(db.url)
    values = {"user": user_id, "ref": ref}
    if path is not None:
        params = [values[n] for n in _LOOKUP_ORDER]
        try:
            rows = sqlite_rows(path, _LOOKUP_SQL, params, wait=False)
        except sqlite3.OperationalError:
            rows = await asyncio.to_thread(sqlite_rows, path, _LOOKUP_SQL, params)
        found = [_Found(*row) for row in rows]
    else:
        async with db.engine.connect() as connection:
            found = [_Found(*row) for row in (await connection.execute(_LOOKUP, values)).all()]
    return _pick(found, ref, user_id).id


class _Found(NamedTuple):
    id: str
    owner_id: str


class CollectionRepository(Repository[Collection]):
    """Collections visible to one user (owned or shared with them); writing needs ownership (403)."""

    model = Collection
    noun = "collection"
    param = "collection"

    def __init__(self, session: AsyncSession, *, user_id: str) -> None:
        super().__init__(session)
        self.user_id = user_id

    def visible(self) -> ColumnElement[bool]:
        """The one visibility filter (`visible_to`) for this user."""
        return visible_to(self.user_id)

    def select(self) -> Select[tuple[Collection]]:
        return super().select().where(self.visible())

    async def find(self, ref: str, *, write: bool = False) -> Collection:
        """A visible collection by id or name (404 otherwise); `write` needs ownership (403)."""
        rows = (await self.session.scalars(self.select().where(_by_ref(ref)))).all()
        collection = _pick(rows, ref, self.user_id)
        if write and collection.owner_id != self.user_id:
            raise HearthError(403, f"collection {ref!r} is shared with you read-only", code="read_only")
        return collection

    def documents(self) -> Select[tuple[Document]]:
        """Documents of the visible collections."""
        return (
            select(Document).join(Collection, Collection.id == Document.collection_id).where(self.visible())
        )

    async def document(self, document_id: str, *, write: bool = False) -> Document:
        """A visible document (404 otherwise); `write` needs its collection's ownership (403)."""
        document = or_404(
            (await self.session.scalars(self.documents().where(Document.id == document_id))).first(),
            f"document {document_id!r} not found",
            param="document_id",
        )
        if write:
            await self.find(document.collection_id, write=True)
        return document

    async def job(self, job_id: str) -> IngestJob:
        """An ingestion job of a visible collection (404 otherwise)."""
        job = (
            await self.session.scalars(
                select(IngestJob)
                .join(Collection, Collection.id == IngestJob.collection_id)
                .where(self.visible(), IngestJob.id == job_id)
            )
        ).first()
        return or_404(job, f"job {job_id!r} not found", param="job_id")
