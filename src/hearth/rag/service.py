"""RAG logic: collections and sharing, durable ingestion jobs, hybrid retrieval, reranking, cited answers.

Access to per-user data goes through `_visible` (the owner-or-shared filter) and `_collection`, so no query
forgets whose data it reads. Ingestion is a job table worked by one background task per server: files are
extracted, chunked, embedded in batches and written to the vector store and the BM25 index under the job's id
(the document version); one SQL update then makes the new version the active one. Queries only return chunks
of active versions, so a replaced document is never seen twice or not at all, and a restart can delete every
chunk whose version is not active.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Select, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.events.bus import EventBus
from hearth.gateway.backends.base import BackendError
from hearth.gateway.service import Caller, Gateway
from hearth.platform.db import Database, new_id, utcnow
from hearth.platform.errors import HearthError, bad_request, not_found
from hearth.rag import events, fusion, retrieval
from hearth.rag.chunking import WordPieceCounter, chunk_segments
from hearth.rag.extract import SUPPORTED, ExtractionError, content_type_for, extract
from hearth.rag.keyword import Index, KeywordIndex
from hearth.rag.models import Collection, CollectionShare, Document, IngestJob
from hearth.rag.schemas import (
    CollectionOut,
    DocumentOut,
    IngestResponse,
    JobOut,
    Mode,
    QueryResponse,
    RagSource,
    TextDocument,
    check_metadata,
)
from hearth.rag.stores import ChunkRecord, Hit, VectorStore

log = logging.getLogger("hearth.rag")

SYSTEM_PROMPT = (
    "You answer questions using only the numbered context passages the user gives you. "
    "After each statement, cite the passage it comes from as [1], [2] and so on, using only the numbers "
    "shown. If the passages do not contain the answer, say that you do not know. "
    "Do not use outside knowledge."
)
_CITATION = re.compile(r"(\s*)\[(\s*\d+\s*(?:,\s*\d+\s*)*)\]")
_MAX_ATTEMPTS = 3  # a job that crashed the worker this often is failed instead of retried forever
_DOC_FIELDS = {"document_id", "source", "title", "content_type"}
_Prepared = tuple[str, list[ChunkRecord], list[str]]  # a job's title, chunk records (vectors to come), texts
_ACTIVE = select(Document.id, Document.collection_id, Document.active_version, Document.source).where(
    Document.id.in_(bindparam("ids", expanding=True))
)


@dataclass
class RagConfig:
    data_dir: Path
    chunk_tokens: int = 180
    chunk_overlap: int = 30
    title_tokens: int = 40
    default_mode: Mode = "hybrid"
    fusion: str = "max"
    sparse_weight: float = 0.3
    candidates: int = 100
    feedback: int = 3  # hybrid: top fused chunks used for pseudo-relevance feedback (0: off)
    feedback_terms: int = 10
    embed_batch: int = 128
    worker_batch: int = 256
    embedder: str = "embedder"
    reranker: str = "reranker"
    chat_model: str = "chat"


@dataclass
class SearchResult:
    sources: list[RagSource]
    mode: Mode
    collection_id: str
    latency_ms: dict[str, float]


@dataclass(frozen=True)
class _Stage:
    """One search-stage query: what `search_stage` hands to either of its paths."""

    collection_id: str
    query: str
    vector: np.ndarray | None
    mode: str
    top_k: int
    depth: int  # candidates per retriever
    allowed: set[str] | None  # documents a filter lets through; None: all


@dataclass(frozen=True)
class FileUpload:
    """One uploaded file to ingest, as received (checked by the service)."""

    filename: str
    data: bytes
    source: str | None = None
    title: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Item:
    """One checked document to queue: its source, format, bytes and the hash that decides "unchanged"."""

    source: str
    content_type: str
    data: bytes
    title: str | None
    metadata: dict[str, Any]
    content_hash: str


def _item(
    *, source: str, content_type: str, data: bytes, title: str | None, metadata: dict[str, Any]
) -> _Item:
    digest = hashlib.sha256(data)
    # Title and metadata are stored on every chunk, so a change to them is a new version too.
    digest.update(json.dumps([content_type, title, metadata], sort_keys=True, default=str).encode())
    return _Item(source, content_type, data, title, metadata, digest.hexdigest())


def _file_item(upload: FileUpload) -> _Item:
    check_name(upload.filename, param="filename", allow_dirs=False)
    content_type = content_type_for(upload.filename)
    if content_type is None:
        raise HearthError(
            415,
            f"unsupported file type {Path(upload.filename).suffix or '(none)'!r}: send one of "
            + ", ".join(sorted(SUPPORTED)),
            code="unsupported_type",
            type="invalid_request_error",
            param="file",
        )
    if not upload.data:
        raise bad_request("the file is empty", param="file", code="empty_file")
    source = upload.source or upload.filename
    check_name(source, param="source", allow_dirs=True)
    try:
        metadata = check_metadata(upload.metadata or {})
    except ValueError as exc:
        raise bad_request(str(exc), param="metadata") from None
    return _item(
        source=source, content_type=content_type, data=upload.data, title=upload.title, metadata=metadata
    )


def _text_item(document: TextDocument) -> _Item:
    if not document.text.strip():
        raise bad_request("the text is empty", param="text", code="empty_file")
    data = document.text.encode()
    source = document.source or "text-" + hashlib.sha256(data).hexdigest()[:16]
    check_name(source, param="source", allow_dirs=True)
    return _item(
        source=source,
        content_type=document.format,
        data=data,
        title=document.title,
        metadata=document.metadata,
    )


def _checked(field: str, index: int, check: Callable[[], _Item]) -> _Item:
    """Run one item's checks; an error names the item (`documents.3.source`) so the client can fix it."""
    try:
        return check()
    except HearthError as exc:
        raise HearthError(
            exc.status,
            f"{field}[{index}]: {exc.message}",
            code=exc.code,
            param=f"{field}.{index}.{exc.param}" if exc.param else f"{field}.{index}",
            type=exc.type,
        ) from None


def _unique(items: list[_Item], field: str) -> list[_Item]:
    """One request may name a source once: two versions of a document in one request have no order."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.source in seen:
            raise bad_request(
                f"{field}[{i}]: source {item.source!r} is also {field}[{seen[item.source]}]'s",
                param=f"{field}.{i}.source",
                code="duplicate_source",
            )
        seen[item.source] = i
    return items


def _write_files(files: list[tuple[Path, bytes]]) -> None:
    for path, data in files:
        path.write_bytes(data)


def fix_citations(answer: str, count: int) -> str:
    """Keep only citations [n] with 1 <= n <= count; a bracket left with none is removed."""

    def repair(match: re.Match[str]) -> str:
        numbers = [int(n) for n in match.group(2).split(",")]
        kept = [str(n) for n in dict.fromkeys(numbers) if 1 <= n <= count]
        # A dropped citation takes the space before it along, so "drag [9]." becomes "drag.".
        return f"{match.group(1)}[{', '.join(kept)}]" if kept else ""

    return _CITATION.sub(repair, answer) if "[" in answer else answer


class CitationFilter:
    """Repairs citations in a streamed answer: text is passed on as it comes, except a possible citation,
    which is held back until its closing bracket shows whether it names a real source."""

    # Trailing spaces are held too: they belong to a citation that may yet be dropped.
    _OPEN = re.compile(r"\s*(\[[\d,\s]*)?$")

    def __init__(self, count: int) -> None:
        self.count = count
        self.pending = ""

    def feed(self, text: str) -> str:
        buffer = self.pending + text
        self.pending = ""
        tail = self._OPEN.search(buffer)
        if tail is not None:
            buffer, self.pending = buffer[: tail.start()], buffer[tail.start() :]
        return fix_citations(buffer, self.count)

    def flush(self) -> str:
        rest, self.pending = self.pending, ""
        return fix_citations(rest, self.count)


class RagService:
    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        gateway: Gateway,
        store: VectorStore,
        keywords: KeywordIndex,
        config: RagConfig,
        counter: WordPieceCounter | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.gateway = gateway
        self.store = store
        self.keywords = keywords
        self.config = config
        self.counter = counter or WordPieceCounter.default()
        self.uploads = config.data_dir / "rag" / "uploads"
        self.uploads.mkdir(parents=True, exist_ok=True)
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()  # set when jobs of this process end (indexed or failed)
        self._worker: asyncio.Task[None] | None = None
        # Serialises index writes per collection (worker batches and deletions).
        self._index_locks: dict[str, asyncio.Lock] = {}
        self._touched: set[str] = set()  # collections written since the last optimize
        self._writing: asyncio.Task[None] | None = None  # the previous batch's index writes (worker only)

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def start(self, *, worker: bool = True) -> None:
        """Reconcile the indexes with SQL after a crash, then start the ingestion worker."""
        await self.recover()
        if worker:
            self._worker = asyncio.create_task(self._work(), name="rag-ingest-worker")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._writing is not None:
            # Its jobs stay "embedding" and go back to pending at the next start (see recover).
            self._writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writing
            self._writing = None
        close = getattr(self.store, "close", None)
        if close is not None:
            await asyncio.to_thread(close)

    async def recover(self) -> None:
        """Jobs interrupted mid-way go back to pending; chunks of versions that are not active are deleted."""
        async with self.db.transaction() as session:
            await session.execute(
                update(IngestJob)
                .where(IngestJob.status.in_(("extracting", "embedding")))
                .values(status="pending", updated_at=utcnow())
            )
            collections = set((await session.scalars(select(Collection.id))).all())
            active = set(
                (
                    await session.execute(
                        select(Document.id, Document.active_version).where(
                            Document.active_version.is_not(None)
                        )
                    )
                ).all()
            )
            pending_uploads = set(
                (await session.scalars(select(IngestJob.id).where(IngestJob.status == "pending"))).all()
            )
        for collection_id in await asyncio.to_thread(self.store.collections):
            if collection_id not in collections:
                await asyncio.to_thread(self.store.drop, collection_id)
                self.keywords.drop(collection_id)
                continue
            stale = [
                key
                for key in await asyncio.to_thread(self.store.versions, collection_id)
                if key not in active
            ]
            for document_id, version in stale:
                await asyncio.to_thread(self.store.delete_version, collection_id, document_id, version)
            if stale or not self.keywords.exists(collection_id):
                await self._rebuild_keywords(collection_id)
        for path in self.uploads.iterdir():
            if path.name not in pending_uploads:
                path.unlink(missing_ok=True)

    def _lock(self, collection_id: str) -> asyncio.Lock:
        return self._index_locks.setdefault(collection_id, asyncio.Lock())

    # -- access -------------------------------------------------------------------------------------------

    @staticmethod
    def _visible(user_id: str) -> Any:
        """The one owner filter: collections the user owns or that are shared with them."""
        shared = select(CollectionShare.collection_id).where(CollectionShare.user_id == user_id)
        return or_(Collection.owner_id == user_id, Collection.id.in_(shared))

    async def _collection(
        self, session: AsyncSession, *, user_id: str, ref: str, write: bool = False
    ) -> Collection:
        """A collection by id or name that the user may see (404 otherwise); `write` needs ownership (403)."""
        rows = (
            await session.scalars(
                select(Collection).where(
                    self._visible(user_id), or_(Collection.id == ref, Collection.name == ref)
                )
            )
        ).all()
        if not rows:
            raise not_found(f"collection {ref!r} not found", param="collection")
        # An id match beats a name match, and the user's own collection beats one shared under the same name.
        rows = sorted(rows, key=lambda c: (c.id != ref, c.owner_id != user_id))
        collection = rows[0]
        if write and collection.owner_id != user_id:
            raise HearthError(403, f"collection {ref!r} is shared with you read-only", code="read_only")
        return collection

    def _documents(self, user_id: str) -> Select[tuple[Document]]:
        return (
            select(Document)
            .join(Collection, Collection.id == Document.collection_id)
            .where(self._visible(user_id))
        )

    async def _document(
        self, session: AsyncSession, *, user_id: str, document_id: str, write: bool = False
    ) -> Document:
        document = (await session.scalars(self._documents(user_id).where(Document.id == document_id))).first()
        if document is None:
            raise not_found(f"document {document_id!r} not found", param="document_id")
        if write:
            await self._collection(session, user_id=user_id, ref=document.collection_id, write=True)
        return document

    # -- collections --------------------------------------------------------------------------------------

    async def create_collection(self, *, user_id: str, name: str, description: str = "") -> CollectionOut:
        """Create a collection owned by the user; names are unique per owner (409)."""
        async with self.db.transaction() as session:
            taken = await session.scalar(
                select(Collection.id).where(Collection.owner_id == user_id, Collection.name == name)
            )
            if taken:
                raise HearthError(
                    409, f"you already have a collection named {name!r}", code="collection_exists"
                )
            collection = Collection(id=new_id(), owner_id=user_id, name=name, description=description)
            session.add(collection)
            await session.flush()
            await self.bus.publish(
                events.CollectionCreated(collection_id=collection.id, owner_id=user_id, name=name),
                session=session,
            )
            return await self._collection_out(session, collection, user_id)

    async def _collection_out(
        self, session: AsyncSession, collection: Collection, user_id: str
    ) -> CollectionOut:
        from hearth.auth.models import User

        owned = collection.owner_id == user_id
        shared: list[str] = []
        if owned:
            shared = list(
                (
                    await session.scalars(
                        select(User.username)
                        .join(CollectionShare, CollectionShare.user_id == User.id)
                        .where(CollectionShare.collection_id == collection.id)
                        .order_by(User.username)
                    )
                ).all()
            )
        count = await session.scalar(
            select(func.count()).select_from(Document).where(Document.collection_id == collection.id)
        )
        return CollectionOut(
            id=collection.id,
            name=collection.name,
            description=collection.description,
            owner_id=collection.owner_id,
            owned=owned,
            shared_with=shared,
            document_count=count or 0,
            created_at=collection.created_at,
        )

    async def list_collections(self, *, user_id: str) -> list[CollectionOut]:
        """Collections the user owns or that are shared with them."""
        async with self.db.transaction() as session:
            rows = (
                await session.scalars(
                    select(Collection).where(self._visible(user_id)).order_by(Collection.name)
                )
            ).all()
            return [await self._collection_out(session, c, user_id) for c in rows]

    async def get_collection(self, *, user_id: str, collection: str) -> CollectionOut:
        """One visible collection by id or name."""
        async with self.db.transaction() as session:
            found = await self._collection(session, user_id=user_id, ref=collection)
            return await self._collection_out(session, found, user_id)

    async def delete_collection(self, *, user_id: str, collection: str) -> None:
        """Delete an owned collection with its documents, jobs, vectors and keyword index."""
        async with self.db.transaction() as session:
            found = await self._collection(session, user_id=user_id, ref=collection, write=True)
            job_ids = (
                await session.scalars(select(IngestJob.id).where(IngestJob.collection_id == found.id))
            ).all()
            await session.execute(delete(Collection).where(Collection.id == found.id))
            await self.bus.publish(
                events.CollectionDeleted(collection_id=found.id, owner_id=user_id), session=session
            )
        async with self._lock(found.id):
            await asyncio.to_thread(self.store.drop, found.id)
            self.keywords.drop(found.id)
        for job_id in job_ids:
            (self.uploads / job_id).unlink(missing_ok=True)

    async def share(self, *, user_id: str, collection: str, username: str) -> CollectionOut:
        """Give another user read-only access."""
        from hearth.auth.models import User

        async with self.db.transaction() as session:
            found = await self._collection(session, user_id=user_id, ref=collection, write=True)
            other = await session.scalar(select(User).where(User.username == username))
            if other is None:
                raise not_found(f"user {username!r} not found", param="username")
            if other.id == user_id:
                raise bad_request("you own this collection; share it with someone else", param="username")
            exists = await session.get(CollectionShare, (found.id, other.id))
            if exists is None:
                session.add(CollectionShare(collection_id=found.id, user_id=other.id))
                await session.flush()
            return await self._collection_out(session, found, user_id)

    async def unshare(self, *, user_id: str, collection: str, username: str) -> CollectionOut:
        """Withdraw another user's read-only access."""
        from hearth.auth.models import User

        async with self.db.transaction() as session:
            found = await self._collection(session, user_id=user_id, ref=collection, write=True)
            other = await session.scalar(select(User).where(User.username == username))
            if other is None:
                raise not_found(f"user {username!r} not found", param="username")
            await session.execute(
                delete(CollectionShare).where(
                    CollectionShare.collection_id == found.id, CollectionShare.user_id == other.id
                )
            )
            return await self._collection_out(session, found, user_id)

    # -- documents and ingestion --------------------------------------------------------------------------

    async def ingest_file(
        self,
        *,
        user_id: str,
        collection: str,
        filename: str,
        data: bytes,
        source: str | None = None,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> IngestResponse:
        """Queue an uploaded file for ingestion (its format from the file name's extension)."""
        upload = FileUpload(filename=filename, data=data, source=source, title=title, metadata=metadata)
        return (await self._enqueue(user_id=user_id, collection=collection, items=[_file_item(upload)]))[0]

    async def ingest_files(
        self, *, user_id: str, collection: str, files: list[FileUpload]
    ) -> list[IngestResponse]:
        """Queue many uploaded files in one transaction. Every file is checked first: one invalid file
        refuses the whole request (its 4xx names it as `files.<i>`) and nothing is stored."""
        items = [_checked("files", i, lambda f=f: _file_item(f)) for i, f in enumerate(files)]
        return await self._enqueue(user_id=user_id, collection=collection, items=_unique(items, "files"))

    async def ingest_text(self, *, user_id: str, collection: str, document: TextDocument) -> IngestResponse:
        """Queue a document sent as JSON text."""
        return (await self._enqueue(user_id=user_id, collection=collection, items=[_text_item(document)]))[0]

    async def ingest_texts(
        self, *, user_id: str, collection: str, documents: list[TextDocument]
    ) -> list[IngestResponse]:
        """Queue many JSON text documents in one transaction (the bulk path of `hearth rag load`). One invalid
        document refuses the whole request (its 4xx names it as `documents.<i>`) and nothing is stored."""
        items = [_checked("documents", i, lambda d=d: _text_item(d)) for i, d in enumerate(documents)]
        return await self._enqueue(user_id=user_id, collection=collection, items=_unique(items, "documents"))

    async def _enqueue(self, *, user_id: str, collection: str, items: list[_Item]) -> list[IngestResponse]:
        """Queue documents in one transaction: per changed item a document row (new or updated), a pending job
        and its DocumentIngestionRequested event; an item whose content is unchanged queues nothing.

        One transaction and a few set-wise queries for the whole request, whatever its size: the per-document
        cost of enqueueing is CPU taken from the embedder that works the queue on the same cores."""
        written: list[Path] = []
        try:
            async with self.db.transaction() as session:
                found = await self._collection(session, user_id=user_id, ref=collection, write=True)
                existing: dict[str, Document] = {}
                sources = [item.source for item in items]
                for start in range(0, len(sources), 500):  # stays under every database's bound-parameter cap
                    rows = await session.scalars(
                        select(Document).where(
                            Document.collection_id == found.id,
                            Document.source.in_(sources[start : start + 500]),
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
                if unchanged:
                    job_ids = [existing[s].job_id for s in unchanged]
                    for start in range(0, len(job_ids), 500):
                        rows_ = await session.scalars(
                            select(IngestJob).where(IngestJob.id.in_(job_ids[start : start + 500]))
                        )
                        current_jobs.update((j.id, j) for j in rows_.all())
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
                            title=item.title or _default_title(item.source),
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
                    IngestResponse(document=_document_out(d), job=_job_out(j), unchanged=u)
                    for d, j, u in results
                ]
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        if requested:
            self._wake.set()
        return responses

    async def list_documents(
        self, *, user_id: str, collection: str, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DocumentOut]:
        """Documents of a visible collection, oldest first."""
        async with self.db.transaction() as session:
            found = await self._collection(session, user_id=user_id, ref=collection)
            query = self._documents(user_id).where(Document.collection_id == found.id)
            if status:
                query = query.where(Document.status == status)
            rows = await session.scalars(
                query.order_by(Document.created_at, Document.id).limit(limit).offset(offset)
            )
            return [_document_out(d) for d in rows.all()]

    async def get_document(self, *, user_id: str, document_id: str) -> DocumentOut:
        """One visible document."""
        async with self.db.transaction() as session:
            return _document_out(await self._document(session, user_id=user_id, document_id=document_id))

    async def get_job(self, *, user_id: str, job_id: str) -> JobOut:
        """One ingestion job of a visible document."""
        async with self.db.transaction() as session:
            job = (
                await session.scalars(
                    select(IngestJob)
                    .join(Collection, Collection.id == IngestJob.collection_id)
                    .where(self._visible(user_id), IngestJob.id == job_id)
                )
            ).first()
            if job is None:
                raise not_found(f"job {job_id!r} not found", param="job_id")
            return _job_out(job)

    async def delete_document(self, *, user_id: str, document_id: str) -> None:
        """Delete a document of an owned collection and its chunks from every index."""
        async with self.db.transaction() as session:
            document = await self._document(session, user_id=user_id, document_id=document_id, write=True)
            collection_id = document.collection_id
            job_ids = (
                await session.scalars(select(IngestJob.id).where(IngestJob.document_id == document.id))
            ).all()
            await session.execute(delete(Document).where(Document.id == document.id))
            await self.bus.publish(
                events.DocumentDeleted(document_id=document.id, collection_id=collection_id), session=session
            )
        # The rows are gone, so queries already ignore these chunks; now remove them from the indexes.
        async with self._lock(collection_id):
            await asyncio.to_thread(self.store.delete_document, collection_id, document_id)
            await self._rebuild_keywords(collection_id)
        for job_id in job_ids:
            (self.uploads / job_id).unlink(missing_ok=True)

    async def wait_idle(self, *, timeout: float = 600.0) -> None:
        """Until no job is pending or running (for the CLI, tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while True:
            # Cleared before the check, so progress made after it wakes the wait below.
            self._progress.clear()
            async with self.db.transaction() as session:
                busy = await session.scalar(
                    select(func.count())
                    .select_from(IngestJob)
                    .where(IngestJob.status.in_(("pending", "extracting", "embedding")))
                )
            if not busy:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("ingestion did not finish in time")
            # This process's worker signals each finished batch; polling every 0.1 s cost the embedder
            # CPU. The timeout still notices a worker in another process.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), timeout=min(0.5, left))

    # -- the worker ---------------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            try:
                done = await self.run_batch(overlap=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ingestion batch failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if not done:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=2.0)

    async def run_batch(self, *, overlap: bool = False) -> int:
        """Ingest up to `worker_batch` pending jobs; returns how many were taken. With `overlap`, the batch's
        index writes and activation are left running while the caller goes on to embed the next batch (the
        worker does this so the embedder never waits for writes); they finish before the next batch's."""
        jobs = await self._claim()
        self._progress.set()  # a claim can fail jobs (superseded, too many attempts)
        if not jobs:
            await self._finish_writes()
            await self._optimize()
            return 0
        prepared: list[tuple[IngestJob, str, list[ChunkRecord], list[str]]] = []
        # The whole batch is extracted in one worker thread: a hop per document cost ~0.3 s per 150 documents.
        for job, outcome in zip(jobs, await asyncio.to_thread(self._prepare_all, jobs), strict=True):
            if isinstance(outcome, ExtractionError):
                await self._fail(job, str(outcome))
            elif isinstance(outcome, Exception):  # an extractor bug must fail the one job, not the batch
                log.error("extraction crashed", exc_info=outcome, extra={"job_id": job.id})
                await self._fail(job, f"extraction failed: {type(outcome).__name__}: {outcome}")
            else:
                prepared.append((job, *outcome))
        if not prepared:
            return len(jobs)
        await self._set_status([p[0].id for p in prepared], "embedding")
        # One stream of texts across the batch's documents so the embedder always gets full batches.
        all_texts = [t for p in prepared for t in p[3]]
        try:
            vectors = await self._embed(all_texts)
        except (HearthError, BackendError) as exc:
            message = getattr(exc, "message", str(exc))
            for job, *_ in prepared:
                await self._fail(job, f"embedding failed: {message}")
            return len(jobs)
        offset = 0
        for _job, _title, records, _texts in prepared:
            for i, record in enumerate(records):
                object.__setattr__(record, "vector", vectors[offset + i])
            offset += len(records)
        # Versions must become active in batch order: the previous batch's writes finish first.
        await self._finish_writes()
        self._writing = asyncio.create_task(self._write(prepared))
        if not overlap:
            await self._finish_writes()
        return len(jobs)

    async def _finish_writes(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def _write(self, prepared: list[tuple[IngestJob, str, list[ChunkRecord], list[str]]]) -> None:
        """Write a batch's embedded chunks to the indexes, then make its versions active."""
        by_collection: dict[str, list[ChunkRecord]] = {}
        for job, _title, records, _texts in prepared:
            by_collection.setdefault(job.collection_id, []).extend(records)
        for collection_id, records in by_collection.items():
            async with self._lock(collection_id):
                await asyncio.to_thread(self.store.add, collection_id, records)
                await self._rebuild_keywords(collection_id)
        stale = await self._activate(prepared)
        for collection_id, pairs in _group(stale).items():
            async with self._lock(collection_id):
                for document_id, version in pairs:
                    await asyncio.to_thread(self.store.delete_version, collection_id, document_id, version)
                await self._rebuild_keywords(collection_id)
        for job, *_ in prepared:
            await asyncio.to_thread(Path(job.upload_path).unlink, missing_ok=True)
        self._touched.update(by_collection)
        self._progress.set()

    async def _optimize(self) -> None:
        """Once the queue is empty: compact and (re)build ANN indexes of the collections written since the
        last time, not after every batch (documents arriving one by one would make every batch the last)."""
        touched, self._touched = self._touched, set()
        for collection_id in touched:
            async with self._lock(collection_id):
                await asyncio.to_thread(self.store.optimize, collection_id)

    async def _claim(self) -> list[IngestJob]:
        async with self.db.transaction() as session:
            query = (
                select(IngestJob)
                .where(IngestJob.status == "pending")
                .order_by(IngestJob.created_at, IngestJob.id)
                .limit(self.config.worker_batch)
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            jobs = list((await session.scalars(query)).all())
            if not jobs:
                return []
            latest = dict(
                (
                    await session.execute(
                        select(Document.id, Document.job_id).where(
                            Document.id.in_({j.document_id for j in jobs})
                        )
                    )
                ).all()
            )
            claimed = []
            now = utcnow()
            for job in jobs:
                if latest.get(job.document_id) != job.id:
                    job.status, job.error, job.updated_at = "failed", "superseded by a newer version", now
                elif job.attempts >= _MAX_ATTEMPTS:
                    job.status, job.updated_at = "failed", now
                    job.error = f"gave up after {job.attempts} interrupted attempts"
                    await session.execute(
                        update(Document)
                        .where(Document.id == job.document_id)
                        .values(status="failed", error=job.error, updated_at=now)
                    )
                else:
                    job.status, job.attempts, job.updated_at = "extracting", job.attempts + 1, now
                    claimed.append(job)
            await session.execute(
                update(Document)
                .where(Document.job_id.in_([j.id for j in claimed]))
                .values(status="extracting", updated_at=now)
            )
            return claimed

    async def _set_status(self, job_ids: list[str], status: str) -> None:
        async with self.db.transaction() as session:
            now = utcnow()
            await session.execute(
                update(IngestJob).where(IngestJob.id.in_(job_ids)).values(status=status, updated_at=now)
            )
            await session.execute(
                update(Document).where(Document.job_id.in_(job_ids)).values(status=status, updated_at=now)
            )

    def _prepare_all(self, jobs: list[IngestJob]) -> list[_Prepared | Exception]:
        """`_prepare` for each job (in a worker thread); a job that fails gets its exception instead."""
        outcomes: list[_Prepared | Exception] = []
        for job in jobs:
            try:
                outcomes.append(self._prepare(job))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _prepare(self, job: IngestJob) -> _Prepared:
        """Extract and chunk one job's file (in a worker thread): its records (vectors to come) and the texts
        to embed."""
        path = Path(job.upload_path)
        if not path.exists():
            raise ExtractionError("the uploaded file is missing from the data directory")
        extracted = extract(path.read_bytes(), job.content_type)
        title = job.title or extracted.title or ""
        chunks = chunk_segments(
            extracted.segments,
            counter=self.counter,
            size=self.config.chunk_tokens,
            overlap=self.config.chunk_overlap,
        )
        title_prefix = self._clip(title, self.config.title_tokens)
        metadata = json.dumps(job.meta or {})
        records = [
            ChunkRecord(
                chunk_id=new_id(),
                document_id=job.document_id,
                version=job.id,
                position=c.position,
                page=c.page if c.page is not None else -1,
                title=title,
                text=c.text,
                metadata=metadata,
                vector=np.empty(0, dtype=np.float32),
            )
            for c in chunks
        ]
        # The title leads each chunk's embedded text: a chunk alone often lacks the topic its document names.
        texts = [f"{title_prefix}\n{c.text}" if title_prefix else c.text for c in chunks]
        return title, records, texts

    def _clip(self, text: str, tokens: int) -> str:
        if not text or tokens <= 0:
            return ""
        words = self.counter.words(text)
        total, end = 0, 0
        for start_, stop, pieces in words:
            if total + pieces > tokens:
                break
            total += pieces
            end = stop
            del start_
        return text[:end]

    async def _embed(self, texts: list[str]) -> list[np.ndarray]:
        # Texts of similar length go in the same call: the encoder pads each batch to its longest text, so
        # a mixed call wastes compute on padding (the raw model, given every text at once, sorts them too).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(texts)
        batch = self.config.embed_batch
        for start in range(0, len(order), batch):
            picked = order[start : start + batch]
            result = await self.gateway.embed(self.config.embedder, [texts[i] for i in picked])
            for i, v in zip(picked, result.vectors, strict=True):
                vectors[i] = np.asarray(v, dtype=np.float32)
        return vectors

    async def _fail(self, job: IngestJob, reason: str) -> None:
        async with self.db.transaction() as session:
            now = utcnow()
            await session.execute(
                update(IngestJob)
                .where(IngestJob.id == job.id)
                .values(status="failed", error=reason, updated_at=now)
            )
            await session.execute(
                update(Document)
                .where(Document.id == job.document_id, Document.job_id == job.id)
                .values(status="failed", error=reason, updated_at=now)
            )
            await self.bus.publish(
                events.DocumentIngestionFailed(
                    document_id=job.document_id, collection_id=job.collection_id, job_id=job.id, reason=reason
                ),
                session=session,
            )
        await asyncio.to_thread(Path(job.upload_path).unlink, missing_ok=True)
        self._progress.set()

    async def _activate(
        self, prepared: list[tuple[IngestJob, str, list[ChunkRecord], list[str]]]
    ) -> list[tuple[str, str, str]]:
        """Make each job's version the active one in one transaction; returns (collection, document, version)
        triples that no query can see any more and whose chunks can go."""
        stale: list[tuple[str, str, str]] = []
        ingested: list[events.DocumentIngested] = []
        async with self.db.transaction() as session:
            now = utcnow()
            # Two set-wise reads for the batch, not two primary-key reads per document.
            documents = {
                d.id: d
                for d in (
                    await session.scalars(
                        select(Document).where(Document.id.in_({p[0].document_id for p in prepared}))
                    )
                ).all()
            }
            job_ids = [p[0].id for p in prepared]
            rows = {
                r.id: r
                for r in (await session.scalars(select(IngestJob).where(IngestJob.id.in_(job_ids)))).all()
            }
            for job, title, records, _texts in prepared:
                document = documents.get(job.document_id)
                row = rows.get(job.id)
                if document is None or row is None or document.job_id != job.id:
                    # Deleted, or a newer version arrived while this one was embedded.
                    stale.append((job.collection_id, job.document_id, job.id))
                    if row is not None:
                        row.status, row.error, row.updated_at = "failed", "superseded by a newer version", now
                    continue
                old = document.active_version
                if old is not None:
                    stale.append((job.collection_id, document.id, old))
                document.active_version = job.id
                document.status, document.error = "indexed", None
                document.title = title or _default_title(document.source)
                document.content_type = job.content_type
                document.meta = job.meta or {}
                document.chunk_count = len(records)
                document.updated_at = now
                row.status, row.chunk_count, row.updated_at = "indexed", len(records), now
                ingested.append(
                    events.DocumentIngested(
                        document_id=document.id,
                        collection_id=document.collection_id,
                        job_id=job.id,
                        chunk_count=len(records),
                        replaced_version=old,
                    )
                )
            # One flush for the batch's updates and events together.
            await self.bus.publish_many(ingested, session)
        return stale

    async def _rebuild_keywords(self, collection_id: str) -> None:
        rows = await asyncio.to_thread(lambda: list(self.store.rows(collection_id)))
        await asyncio.to_thread(self.keywords.rebuild, collection_id, rows)

    # -- retrieval ----------------------------------------------------------------------------------------

    async def retrieve(
        self,
        *,
        user_id: str,
        collection: str,
        query: str,
        top_k: int = 10,
        top_n: int = 3,
        mode: str | None = None,
        filters: dict | None = None,
    ) -> list[RagSource]:
        """The top_n reranked chunks of a visible collection for `query` (404 for a missing/foreign one)."""
        result = await self.search(
            user_id=user_id,
            collection=collection,
            query=query,
            top_k=top_k,
            top_n=top_n,
            mode=mode,
            filters=filters,
        )
        return result.sources

    async def search(
        self,
        *,
        user_id: str,
        collection: str,
        query: str,
        top_k: int = 10,
        top_n: int = 3,
        mode: str | None = None,
        filters: dict | None = None,
        rerank: bool = True,
        caller: Caller | None = None,
    ) -> SearchResult:
        """Retrieve top_k candidates (dense, sparse or hybrid), rerank them and keep top_n."""
        mode = mode or self.config.default_mode
        if mode not in ("dense", "sparse", "hybrid"):
            raise bad_request(f"unknown mode {mode!r}: use dense, sparse or hybrid", param="mode")
        if not query.strip():
            raise bad_request("the query is empty", param="query")
        caller = caller or Caller(user_id=user_id)
        latency: dict[str, float] = {"embed": 0.0, "search": 0.0, "rerank": 0.0}
        started = time.perf_counter()
        async with self.db.transaction() as session:
            found = await self._collection(session, user_id=user_id, ref=collection)
            allowed = await self._filtered(session, found.id, filters) if filters else None
        vector = None
        if mode != "sparse":
            t = time.perf_counter()
            vector = np.asarray((await self.gateway.embed(self.config.embedder, [query], caller)).vectors[0])
            latency["embed"] = _ms(t)
        t = time.perf_counter()
        sources = await self.search_stage(found.id, query, vector, mode=mode, top_k=top_k, allowed=allowed)
        latency["search"] = _ms(t)
        if rerank and sources:
            t = time.perf_counter()
            result = await self.gateway.rerank(self.config.reranker, query, [s.text for s in sources], caller)
            for source, score in zip(sources, result.scores, strict=True):
                source.rerank_score = float(score)
            sources.sort(key=lambda s: s.rerank_score or 0.0, reverse=True)
            latency["rerank"] = _ms(t)
        latency["total"] = _ms(started)
        return SearchResult(sources[:top_n], mode, found.id, latency)  # type: ignore[arg-type]

    async def search_stage(
        self,
        collection_id: str,
        query: str,
        vector: np.ndarray | None,
        *,
        mode: str,
        top_k: int,
        allowed: set[str] | None = None,
    ) -> list[RagSource]:
        """Index lookups, fusion, pseudo-relevance feedback (hybrid), the active-version check and the
        payloads: the measured search stage. It runs over keyword-index rows in one worker thread
        (`retrieval.search_rows`), and by chunk ids only when the index lacks a dense candidate."""
        depth = max(self.config.candidates, top_k)
        fresh, index = self.keywords.current(collection_id)
        if not fresh:
            # First query, or another process wrote to the collection and rebuilt the index: (re)load it off
            # the event loop, and have the vector store open the collection again to see those writes.
            self.store.refresh(collection_id)
            index = await asyncio.to_thread(self.keywords.load, collection_id)
        stage = _Stage(collection_id, query, vector, mode, top_k, depth, allowed)
        if index is not None:
            sources = await asyncio.to_thread(self._search_rows, stage, index, asyncio.get_running_loop())
            if sources is not None:
                return sources
        return await self._search_hits(stage, index)

    def _search_rows(
        self, stage: _Stage, index: Index, loop: asyncio.AbstractEventLoop
    ) -> list[RagSource] | None:
        """The search stage over the keyword index's rows (blocking; None: a dense candidate it lacks)."""
        collection_id, vector = stage.collection_id, stage.vector
        dense = (
            functools.partial(self.store.search_keys, collection_id, vector, stage.depth, stage.allowed)
            if vector is not None
            else None
        )
        path = _sqlite_file(self.db.url)

        def check(ids: set[str]) -> tuple[dict[str, str | None], dict[str, str]]:
            if path is not None:  # on this thread's own read-only connection
                return _activity(_sqlite_active(path, list(ids)), collection_id)
            return asyncio.run_coroutine_threadsafe(self._active(collection_id, ids), loop).result()

        found = retrieval.search_rows(
            index,
            dense,
            index.query_weights(stage.query) if stage.mode != "dense" else {},
            vector,
            mode=stage.mode,
            top_k=stage.top_k,
            depth=stage.depth,
            allowed=stage.allowed,
            tuning=retrieval.Tuning(
                self.config.fusion,
                self.config.sparse_weight,
                self.config.feedback,
                self.config.feedback_terms,
            ),
            check=check,
        )
        if found is None:
            return None
        payloads = index.payloads(found.rows) if found.rows else []
        return [_source(p, score, found.sources) for p, score in zip(payloads, found.scores, strict=True)]

    async def _search_hits(self, stage: _Stage, index: Index | None) -> list[RagSource]:
        """The search stage by chunk ids, for when the keyword index lacks a dense candidate: another process
        wrote chunks and is rebuilding it. Dense candidates are named by the vector store; no feedback."""
        collection_id, query, vector, mode = stage.collection_id, stage.query, stage.vector, stage.mode
        top_k, depth, allowed = stage.top_k, stage.depth, stage.allowed
        dense: list[Hit] = []
        if vector is not None and mode != "sparse":
            dense = await asyncio.to_thread(self.store.search, collection_id, vector, depth, allowed)
        sparse: list[Hit] = []
        if index is not None and mode != "dense":
            rows, scores = index.top(index.query_weights(query), depth, allowed)
            sparse = [index.hit(r, s) for r, s in zip(rows.tolist(), scores.tolist(), strict=True)]
        if mode == "dense":
            ranked = dense
        elif mode == "sparse":
            ranked = sparse
        else:
            ranked = fusion.fuse(
                dense, sparse, method=self.config.fusion, sparse_weight=self.config.sparse_weight
            )
        active, names = await self._active(collection_id, {h.document_id for h in ranked})
        hits = [h for h in ranked if active.get(h.document_id) == h.version][:top_k]
        payloads = index.payloads_of([h.chunk_id for h in hits]) if index is not None else {}
        missing = [h.chunk_id for h in hits if h.chunk_id not in payloads]
        if missing:
            payloads.update(await asyncio.to_thread(self.store.fetch, collection_id, missing))
        return [_source(payloads[h.chunk_id], h.score, names) for h in hits if h.chunk_id in payloads]

    async def _active(
        self, collection_id: str, document_ids: set[str]
    ) -> tuple[dict[str, str | None], dict[str, str]]:
        """The active version and source of each of these documents that belongs to the collection.

        By primary key alone: with the collection in the WHERE clause SQLite walks the collection's index
        instead (10 ms at 10k documents against under 1 ms); the collection is checked here. On SQLite the
        query runs on a read-only sqlite3 connection of the worker thread: through the async engine it cost
        2.9 ms p50 (several hops to aiosqlite's thread) for a 0.9 ms query. Elsewhere a Core query."""
        ids = list(document_ids)
        path = _sqlite_file(self.db.url)
        if path is not None:
            rows = await asyncio.to_thread(_sqlite_active, path, ids)
        else:
            async with self.db.engine.connect() as connection:
                rows = [tuple(r) for r in (await connection.execute(_ACTIVE, {"ids": ids})).all()]
        return _activity(rows, collection_id)

    async def _filtered(self, session: AsyncSession, collection_id: str, filters: dict[str, Any]) -> set[str]:
        """Ids of the collection's documents whose fields or metadata match every filter (a list: any of)."""
        for key, value in filters.items():
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(i, str | int | float | bool) for i in items) or not items:
                raise bad_request(
                    f"filter {key!r}: use a string, number or boolean, or a non-empty list of them",
                    param=f"filters.{key}",
                )
        rows = (
            await session.execute(
                select(
                    Document.id, Document.source, Document.title, Document.content_type, Document.meta
                ).where(Document.collection_id == collection_id, Document.active_version.is_not(None))
            )
        ).all()
        matched = set()
        for row in rows:
            fields = {
                "document_id": row.id,
                "source": row.source,
                "title": row.title,
                "content_type": row.content_type,
            }
            fields.update({k: v for k, v in (row.meta or {}).items() if k not in _DOC_FIELDS})
            if all(_matches(fields.get(k), v) for k, v in filters.items()):
                matched.add(row.id)
        return matched

    # -- answers ------------------------------------------------------------------------------------------

    def answer_messages(self, *, question: str, sources: list[RagSource]) -> list[dict]:
        """OpenAI chat messages: the system prompt, the numbered context and the question."""
        if sources:
            context = "\n\n".join(
                f"[{i}] {s.title}\n{s.text}" if s.title else f"[{i}] {s.text}"
                for i, s in enumerate(sources, 1)
            )
        else:
            context = "(no passages were found)"
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}"},
        ]

    async def query(
        self,
        *,
        user_id: str,
        collection: str,
        query: str,
        top_k: int = 10,
        top_n: int = 3,
        mode: str | None = None,
        filters: dict | None = None,
        rerank: bool = True,
        generate: bool = True,
        max_tokens: int = 512,
        temperature: float = 0.2,
        caller: Caller | None = None,
    ) -> QueryResponse:
        """Retrieve, rerank and (with `generate`) answer with citations that all map to returned sources."""
        caller = caller or Caller(user_id=user_id)
        result = await self.search(
            user_id=user_id,
            collection=collection,
            query=query,
            top_k=top_k,
            top_n=top_n,
            mode=mode,
            filters=filters,
            rerank=rerank,
            caller=caller,
        )
        answer = None
        latency = result.latency_ms
        latency["generate"] = 0.0
        if generate:
            t = time.perf_counter()
            body = self._answer_body(query, result.sources, max_tokens, temperature)
            response = await self.gateway.chat(body, caller)
            text = response["choices"][0]["message"].get("content") or ""
            answer = fix_citations(text.strip(), len(result.sources))
            latency["generate"] = _ms(t)
            latency["total"] = round(latency["total"] + latency["generate"], 3)
        await self._query_event(user_id, result, top_k, top_n, generate)
        return QueryResponse(answer=answer, sources=result.sources, mode=result.mode, latency_ms=latency)

    async def query_stream(
        self,
        *,
        user_id: str,
        collection: str,
        query: str,
        top_k: int = 10,
        top_n: int = 3,
        mode: str | None = None,
        filters: dict | None = None,
        rerank: bool = True,
        max_tokens: int = 512,
        temperature: float = 0.2,
        caller: Caller | None = None,
    ) -> tuple[SearchResult, AsyncIterator[dict[str, Any]]]:
        """Retrieval first (errors raise before any byte is sent), then an iterator of answer events:
        {"delta": text}… and finally {"answer", "latency_ms"}."""
        caller = caller or Caller(user_id=user_id)
        result = await self.search(
            user_id=user_id,
            collection=collection,
            query=query,
            top_k=top_k,
            top_n=top_n,
            mode=mode,
            filters=filters,
            rerank=rerank,
            caller=caller,
        )
        body = {**self._answer_body(query, result.sources, max_tokens, temperature), "stream": True}
        t = time.perf_counter()
        stream = await self.gateway.chat_stream(body, caller)

        async def events_() -> AsyncIterator[dict[str, Any]]:
            citations = CitationFilter(len(result.sources))
            parts: list[str] = []
            try:
                async for chunk in stream:
                    for choice in chunk.get("choices", []):
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            out = citations.feed(text)
                            if out:
                                parts.append(out)
                                yield {"delta": out}
                rest = citations.flush()
                if rest:
                    parts.append(rest)
                    yield {"delta": rest}
            finally:
                await stream.aclose()
            latency = dict(result.latency_ms)
            latency["generate"] = _ms(t)
            latency["total"] = round(latency["total"] + latency["generate"], 3)
            await self._query_event(user_id, result, top_k, top_n, True)
            yield {
                "answer": fix_citations("".join(parts).strip(), len(result.sources)),
                "latency_ms": latency,
            }

        return result, events_()

    def _answer_body(
        self, question: str, sources: list[RagSource], max_tokens: int, temperature: float
    ) -> dict[str, Any]:
        """The chat request that answers `question` from `sources` (streamed or not)."""
        return {
            "model": self.config.chat_model,
            "messages": self.answer_messages(question=question, sources=sources),
            "max_tokens": max_tokens,
            "temperature": temperature,
        }

    async def _query_event(
        self, user_id: str, result: SearchResult, top_k: int, top_n: int, generated: bool
    ) -> None:
        await self.bus.publish(
            events.RAGQueryExecuted(
                user_id=user_id,
                collection_id=result.collection_id,
                mode=result.mode,
                top_k=top_k,
                top_n=top_n,
                source_chunk_ids=[s.chunk_id for s in result.sources],
                generated=generated,
                latency_ms=result.latency_ms,
            )
        )


# -- helpers ------------------------------------------------------------------------------------------------


_READERS = threading.local()


def _source(payload: dict[str, Any], score: float, sources: dict[str, str]) -> RagSource:
    """A retrieved chunk as returned: its payload, its score, and its document's source in the metadata."""
    metadata = json.loads(payload["metadata"] or "{}")
    metadata["source"] = sources[payload["document_id"]]
    metadata["position"] = payload["position"]
    if payload["page"] >= 0:
        metadata["page"] = payload["page"]
    return RagSource(
        chunk_id=payload["chunk_id"],
        document_id=payload["document_id"],
        title=payload["title"],
        text=payload["text"],
        score=round(score, 6),
        metadata=metadata,
    )


def _sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL (None for other databases and in-memory SQLite)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1].split("?", 1)[0]
    return path if path and path != ":memory:" else None


def _activity(
    rows: Iterable[tuple[str, str, str | None, str]], collection_id: str
) -> tuple[dict[str, str | None], dict[str, str]]:
    """Active version and source per document, for the documents of this collection."""
    mine = [r for r in rows if r[1] == collection_id]
    return {r[0]: r[2] for r in mine}, {r[0]: r[3] for r in mine}


def _sqlite_active(path: str, ids: list[str]) -> list[tuple[str, str, str | None, str]]:
    """(id, collection_id, active_version, source) of these documents, on this thread's read-only
    connection (WAL: it reads the last committed state and never blocks a writer)."""
    held = getattr(_READERS, "held", None)  # one connection per thread, for the last database it read
    if held is None or held[0] != path:
        if held is not None:
            held[1].close()
        held = _READERS.held = (path, sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30))
    connection = held[1]
    rows: list[tuple[str, str, str | None, str]] = []
    for start in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        rows += connection.execute(
            f"SELECT id, collection_id, active_version, source FROM {Document.__tablename__} "
            f"WHERE id IN ({', '.join('?' * len(chunk))})",
            chunk,
        ).fetchall()
    return rows


def check_name(name: str, *, param: str, allow_dirs: bool) -> None:
    """Reject names that could reach outside a folder or confuse a file system (400)."""
    if not name or len(name) > 1024:
        raise bad_request(f"{param} must be 1 to 1024 characters", param=param, code="invalid_name")
    if "\x00" in name or any(ord(c) < 32 for c in name):
        raise bad_request(
            f"{param} must not contain NUL or control characters", param=param, code="invalid_name"
        )
    parts = name.replace("\\", "/").split("/")
    if ".." in parts or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise bad_request(
            f"{param} must not contain '..' or be an absolute path", param=param, code="invalid_name"
        )
    if not allow_dirs and len(parts) > 1:
        raise bad_request(f"{param} must be a bare file name", param=param, code="invalid_name")


def _matches(actual: Any, wanted: Any) -> bool:
    wanted_values = wanted if isinstance(wanted, list) else [wanted]
    actual_values = actual if isinstance(actual, list) else [actual]
    return any(a == w for a in actual_values for w in wanted_values if a is not None)


def _group(stale: Iterable[tuple[str, str, str]]) -> dict[str, list[tuple[str, str]]]:
    grouped: dict[str, list[tuple[str, str]]] = {}
    for collection_id, document_id, version in stale:
        grouped.setdefault(collection_id, []).append((document_id, version))
    return grouped


def _default_title(source: str) -> str:
    return Path(source.replace("\\", "/")).stem or source


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _document_out(document: Document) -> DocumentOut:
    return DocumentOut(
        id=document.id,
        collection_id=document.collection_id,
        source=document.source,
        title=document.title,
        content_type=document.content_type,
        content_hash=document.content_hash,
        status=document.status,  # type: ignore[arg-type]
        error=document.error,
        queryable=document.active_version is not None,
        chunk_count=document.chunk_count,
        metadata=document.meta or {},
        job_id=document.job_id,
        created_at=document.created_at,
        updated_at=document.updated_at,
    )


def _job_out(job: IngestJob) -> JobOut:
    return JobOut(
        id=job.id,
        document_id=job.document_id,
        collection_id=job.collection_id,
        status=job.status,  # type: ignore[arg-type]
        error=job.error,
        chunk_count=job.chunk_count,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )
