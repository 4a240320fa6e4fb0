"""Who may read what: collections a user owns or that are shared with them, and the documents and jobs in
them. Every read of per-user rag data starts here, so no query forgets the visibility filter."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.platform.errors import HearthError
from hearth.platform.kit.repository import Repository, or_404
from hearth.rag.models import Collection, CollectionShare, Document, IngestJob


class CollectionRepository(Repository[Collection]):
    """Collections visible to one user (owned or shared with them); writing needs ownership (403)."""

    model = Collection
    noun = "collection"
    param = "collection"

    def __init__(self, session: AsyncSession, *, user_id: str) -> None:
        super().__init__(session)
        self.user_id = user_id

    def visible(self) -> ColumnElement[bool]:
        """The one visibility filter: owned by the user or shared with them."""
        shared = select(CollectionShare.collection_id).where(CollectionShare.user_id == self.user_id)
        return or_(Collection.owner_id == self.user_id, Collection.id.in_(shared))

    def select(self) -> Select[tuple[Collection]]:
        return super().select().where(self.visible())

    async def find(self, ref: str, *, write: bool = False) -> Collection:
        """A visible collection by id or name (404 otherwise); `write` needs ownership (403)."""
        rows = (
            await self.session.scalars(self.select().where(or_(Collection.id == ref, Collection.name == ref)))
        ).all()
        or_404(rows or None, f"collection {ref!r} not found", param="collection")
        # An id match beats a name match, and the user's own collection beats one shared under the same name.
        collection = min(rows, key=lambda c: (c.id != ref, c.owner_id != self.user_id))
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
