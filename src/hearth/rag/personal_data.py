"""The rag part of a user's personal data: the collections they own (documents, ingestion jobs, uploaded
originals, vector and keyword index entries) and the shares that give them access to others' collections.

The export carries each document's text as indexed (its chunks in order, without vectors): the worker
removes an upload once its document is indexed, so the archive's files are only uploads still waiting.

Erasure deletes each owned collection the way its owner's DELETE does (`Collections.delete_collection`):
rows, the vector store's table or Qdrant collection, the BM25 index folder and the uploaded files. Dropping
whole collections (not documents one by one) is what takes the text off the disk: LanceDB keeps deleted
rows in old versions of a table until it is compacted, a dropped table is gone. The user's query events not
yet stored (`EventBuffer`, a fraction of a second's worth) are dropped; stored ones are the events context's
to erase."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select

from hearth.events.buffer import EventBuffer
from hearth.platform.db import Database
from hearth.platform.personal_data import Rows, row_dict
from hearth.rag.collections import Collections
from hearth.rag.models import Collection, CollectionShare, Document, IngestJob
from hearth.rag.stores import PAYLOAD, VectorStore


class RagPersonalData:
    context = "rag"

    def __init__(
        self,
        db: Database,
        collections: Collections,
        store: VectorStore,
        uploads: Path,
        query_events: EventBuffer | None = None,
    ) -> None:
        self.db = db
        self.collections = collections
        self.store = store
        self.uploads = uploads
        self.query_events = query_events

    def _chunks(self, documents: list[Document]) -> list[dict[str, Any]]:
        """The active version's chunks of each document, in order, without vectors (off the event loop)."""
        active = {(d.id, d.active_version) for d in documents if d.active_version}
        chunks = []
        for collection_id in sorted({d.collection_id for d in documents}):
            for row in self.store.rows(collection_id):
                if (row["document_id"], row["version"]) in active:
                    chunks.append({k: row[k] for k in PAYLOAD})
        return sorted(chunks, key=lambda c: (c["document_id"], c["position"]))

    async def export_user(self, user_id: str) -> Rows:
        async with self.db.sessions() as s:
            owned = (
                await s.scalars(
                    select(Collection).where(Collection.owner_id == user_id).order_by(Collection.name)
                )
            ).all()
            ids = [c.id for c in owned]
            shares = (
                await s.scalars(
                    select(CollectionShare).where(
                        or_(CollectionShare.user_id == user_id, CollectionShare.collection_id.in_(ids))
                    )
                )
            ).all()
            documents = (await s.scalars(select(Document).where(Document.collection_id.in_(ids)))).all()
            jobs = (await s.scalars(select(IngestJob).where(IngestJob.collection_id.in_(ids)))).all()
        chunks = await asyncio.to_thread(self._chunks, list(documents))
        return {
            "collections": [row_dict(c) for c in owned],
            "shares": [row_dict(x) for x in shares],
            "documents": [row_dict(d) for d in documents],
            # upload_path is a server path: the archive has the file itself under rag/uploads/
            "ingest_jobs": [row_dict(j, exclude=("upload_path",)) for j in jobs],
            "chunks": chunks,
        }

    async def user_files(self, user_id: str) -> list[tuple[str, Path]]:
        """Each uploaded original still on disk, as uploads/<document id>/<job id>-<source name>."""
        async with self.db.sessions() as s:
            rows = (
                await s.execute(
                    select(IngestJob.id, Document.id, Document.source)
                    .join(Document, Document.id == IngestJob.document_id)
                    .join(Collection, Collection.id == Document.collection_id)
                    .where(Collection.owner_id == user_id)
                )
            ).all()
        files = []
        for job_id, document_id, source in rows:
            path = self.uploads / job_id
            if path.is_file():
                files.append((f"uploads/{document_id}/{job_id}-{Path(source).name}", path))
        return files

    async def erase_user(self, user_id: str) -> None:
        if self.query_events is not None:
            await self.query_events.forget(user_id)
        async with self.db.sessions() as s:
            owned = (await s.scalars(select(Collection.id).where(Collection.owner_id == user_id))).all()
        for collection_id in owned:
            await self.collections.delete_collection(user_id=user_id, collection=collection_id)
        async with self.db.transaction() as s:
            await s.execute(delete(CollectionShare).where(CollectionShare.user_id == user_id))
