"""Documents: queueing new versions (one transaction per request, whatever its size), reading documents and
jobs, and deleting a document from SQL and both indexes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import delete, select

from hearth.events.bus import EventBus
from hearth.platform.db import Database, new_id, utcnow
from hearth.platform.kit.repository import in_chunks
from hearth.rag import events
from hearth.rag.indexes import Indexes
from hearth.rag.models import Document, IngestJob
from hearth.rag.repository import CollectionRepository
from hearth.rag.schemas import DocumentOut, IngestResponse, JobOut, TextDocument
from hearth.rag.uploads import FileUpload, Item, checked, default_title, file_item, text_item, unique


class Documents:
    def __init__(
        self, *, db: Database, bus: EventBus, indexes: Indexes, uploads: Path, on_queued: Callable[[], None]
    ) -> None:
        self.db = db
        self.bus = bus
        self.indexes = indexes
        self.uploads = uploads
        self.on_queued = on_queued  # wakes the ingestion worker

    async def ingest_file(
        self,
        *,
        user_id: str,
        collection: str,
        filename: str,
        data: bytes,
        source: str | None = None,
        title: str | None = None,
        metadata: dict | None = None,
    ) -> IngestResponse:
        """Queue an uploaded file for ingestion (its format from the file name's extension)."""
        upload = FileUpload(filename=filename, data=data, source=source, title=title, metadata=metadata)
        item = await asyncio.to_thread(file_item, upload)  # off the event loop: a DOCX check inflates it
        return (await self.enqueue(user_id=user_id, collection=collection, items=[item]))[0]

    async def ingest_files(
        self, *, user_id: str, collection: str, files: list[FileUpload]
    ) -> list[IngestResponse]:
        """Queue many uploaded files in one transaction. Every file is checked first: one invalid file
        refuses the whole request (its 4xx names it as `files.<i>`) and nothing is stored."""
        items = await asyncio.to_thread(
            lambda: [checked("files", i, lambda f=f: file_item(f)) for i, f in enumerate(files)]
        )
        return await self.enqueue(user_id=user_id, collection=collection, items=unique(items, "files"))

    async def ingest_text(self, *, user_id: str, collection: str, document: TextDocument) -> IngestResponse:
        """Queue a document sent as JSON text."""
        return (await self.enqueue(user_id=user_id, collection=collection, items=[text_item(document)]))[0]

    async def ingest_texts(
        self, *, user_id: str, collection: str, documents: list[TextDocument]
    ) -> list[IngestResponse]:
        """Queue many JSON text documents in one transaction (the bulk path of `hearth rag load`). One invalid
        document refuses the whole request (its 4xx names it as `documents.<i>`) and nothing is stored."""
        items = [checked("documents", i, lambda d=d: text_item(d)) for i, d in enumerate(documents)]
        return await self.enqueue(user_id=user_id, collection=collection, items=unique(items, "documents"))

    async def enqueue(self, *, user_id: str, collection: str, items: list[Item]) -> list[IngestResponse]:
        """Queue documents in one transaction: per changed item a document row (new or updated), a pending job
        and its DocumentIngestionRequested event; an item whose content is unchanged queues nothing.

        One transaction and a few set-wise queries for the whole request, whatever its size: the per-document
        cost of enqueueing is CPU taken from the embedder that works the queue on the same cores."""
        written: list[Path] = []
        try:
            async with self.db.transaction() as session:
                found = await CollectionRepository(session, user_id=user_id).find(collection, write=True)
                existing: dict[str, Document] = {}
                for sources in in_chunks([item.source for item in items]):
                    rows = await session.scalars(
                        select(Document).where(
                            Document.collection_id == found.id, Document.source.in_(sources)
                        )
                    )
                    existing.update((d.source, d) for d in rows.all())
                unchanged = {
                    item.source
                    for item in items
                    if (d := existing.get(item.source)) is not None
                    and d.content_hash == item.content_hash
                    and d.status != "failed"
                }
                current_jobs: dict[str, IngestJob] = {}
                for job_ids in in_chunks([existing[s].job_id for s in unchanged]):
                    jobs = await session.scalars(select(IngestJob).where(IngestJob.id.in_(job_ids)))
                    current_jobs.update((j.id, j) for j in jobs.all())
                queued = [item for item in items if item.source not in unchanged]
                job_of = {item.source: new_id() for item in queued}
                # The files go to disk before the rows that name them commit; a crash in between leaves only
                # files that recover() deletes (no pending job names them).
                uploads = [(self.uploads / job_of[item.source], item.data) for item in queued]
                written = [path for path, _ in uploads]
                if uploads:
                    await asyncio.to_thread(_write_files, uploads)
                now = utcnow()
                results: list[tuple[Document, IngestJob, bool]] = []
                requested: list[events.DocumentIngestionRequested] = []
                for item in items:
                    document = existing.get(item.source)
                    if item.source in unchanged:
                        assert document is not None
                        results.append((document, current_jobs[document.job_id], True))
                        continue
                    job_id = job_of[item.source]
                    if document is None:
                        document = Document(
                            id=new_id(),
                            collection_id=found.id,
                            source=item.source,
                            title=item.title or default_title(item.source),
                            content_type=item.content_type,
                            meta=item.metadata,
                            chunk_count=0,
                            created_at=now,
                        )
                        session.add(document)
                    document.content_hash = item.content_hash
                    document.status = "pending"
                    document.error = None
                    document.job_id = job_id
                    document.updated_at = now
                    job = IngestJob(
                        id=job_id,
                        document_id=document.id,
                        collection_id=found.id,
                        status="pending",
                        content_hash=item.content_hash,
                        content_type=item.content_type,
                        title=item.title,
                        meta=item.metadata,
                        upload_path=str(self.uploads / job_id),
                        chunk_count=0,
                        attempts=0,
                        created_at=now,
                        updated_at=now,
                    )
                    session.add(job)
                    results.append((document, job, False))
                    requested.append(
                        events.DocumentIngestionRequested(
                            document_id=document.id,
                            collection_id=found.id,
                            job_id=job_id,
                            source=item.source,
                            content_hash=item.content_hash,
                        )
                    )
                await session.flush()
                await self.bus.publish_many(requested, session)
                responses = [
                    IngestResponse(
                        document=DocumentOut.model_validate(d), job=JobOut.model_validate(j), unchanged=u
                    )
                    for d, j, u in results
                ]
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        if requested:
            self.on_queued()
        return responses

    async def list_documents(
        self, *, user_id: str, collection: str, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DocumentOut]:
        """Documents of a visible collection, oldest first."""
        async with self.db.transaction() as session:
            repo = CollectionRepository(session, user_id=user_id)
            found = await repo.find(collection)
            query = repo.documents().where(Document.collection_id == found.id)
            if status:
                query = query.where(Document.status == status)
            rows = await session.scalars(
                query.order_by(Document.created_at, Document.id).limit(limit).offset(offset)
            )
            return [DocumentOut.model_validate(d) for d in rows.all()]

    async def get_document(self, *, user_id: str, document_id: str) -> DocumentOut:
        """One visible document."""
        async with self.db.transaction() as session:
            document = await CollectionRepository(session, user_id=user_id).document(document_id)
            return DocumentOut.model_validate(document)

    async def get_job(self, *, user_id: str, job_id: str) -> JobOut:
        """One ingestion job of a visible document."""
        async with self.db.transaction() as session:
            return JobOut.model_validate(await CollectionRepository(session, user_id=user_id).job(job_id))

    async def delete_document(self, *, user_id: str, document_id: str) -> None:
        """Delete a document of an owned collection and its chunks from every index."""
        async with self.db.transaction() as session:
            document = await CollectionRepository(session, user_id=user_id).document(document_id, write=True)
            collection_id = document.collection_id
            job_ids = (
                await session.scalars(select(IngestJob.id).where(IngestJob.document_id == document.id))
            ).all()
            await session.execute(delete(Document).where(Document.id == document.id))
            await self.bus.publish(
                events.DocumentDeleted(document_id=document.id, collection_id=collection_id), session=session
            )
        # The rows are gone, so queries already ignore these chunks; now remove them from the indexes.
        await self.indexes.delete_document(collection_id, document_id)
        for job_id in job_ids:
            (self.uploads / job_id).unlink(missing_ok=True)


def _write_files(files: list[tuple[Path, bytes]]) -> None:
    for path, data in files:
        path.write_bytes(data)
