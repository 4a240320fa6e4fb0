"""The ingestion worker: one background task per server works the job table. Jobs are extracted, chunked,
embedded in batches and written to the vector store and the BM25 index under the job's id (the document
version); one SQL update then makes the new version the active one. Queries only return chunks of active
versions, so a replaced document is never seen twice or not at all, and a restart (`recover`) can delete
every chunk whose version is not active.

One document never strands the others of its batch: a batch step that fails (embedding, index writes) is
redone one document at a time, and a document that fails alone is retried after a pause, at most
`_MAX_ATTEMPTS` times, then `failed` with the reason. A document deleted (or replaced) while its batch is
being embedded is dropped before the next embedding call: deleting stops the work, not only the rows.

Replicas share the job table. A claim (`FOR UPDATE SKIP LOCKED` on PostgreSQL) leases its jobs to this
replica (platform/kit/leases.py); a heartbeat renews the leases while they are worked. A replica killed
without warning stops renewing, and once the lease expires another replica claims the jobs again: it first
deletes whatever chunks the dead one wrote for that version, so each document is indexed once. A replica that
stops gracefully gives its jobs back at once; `recover` at start-up touches only jobs nobody holds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.events.bus import EventBus
from hearth.gateway.service import Gateway
from hearth.platform.db import Database, new_id, utcnow
from hearth.platform.errors import HearthError
from hearth.platform.kit.leases import LeasedRows, claimable
from hearth.platform.kit.tasks import cancelled
from hearth.rag import events
from hearth.rag.chunking import WordPieceCounter, chunk_segments
from hearth.rag.config import RagConfig
from hearth.rag.extract import ExtractionError, extract
from hearth.rag.indexes import Indexes
from hearth.rag.models import Collection, Document, IngestJob
from hearth.rag.stores import ChunkRecord
from hearth.rag.uploads import default_title

log = logging.getLogger("hearth.rag")

_MAX_ATTEMPTS = 3  # attempts per job (failed or interrupted by a crash) before it is failed for good
_RETRY_PAUSE = 0.5  # seconds before a failed job's second attempt; doubles per attempt
_Prepared = tuple[str, list[ChunkRecord], list[str]]  # a job's title, chunk records (vectors to come), texts
_RUNNING = ("extracting", "embedding")
_UPLOAD_GRACE = 300.0  # seconds: an upload younger than this may belong to a job another replica is queueing


@dataclass
class _Work:
    """One claimed job on its way through a batch: its title, chunk records (vectors set once embedded) and
    the texts to embed."""

    job: IngestJob
    title: str
    records: list[ChunkRecord]
    texts: list[str]


class IngestWorker:
    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        gateway: Gateway,
        indexes: Indexes,
        config: RagConfig,
        counter: WordPieceCounter,
    ) -> None:
        self.db = db
        self.bus = bus
        self.gateway = gateway
        self.indexes = indexes
        self.store = indexes.store
        self.keywords = indexes.keywords
        self.config = config
        self.counter = counter
        self.uploads = config.uploads
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()  # set when jobs of this process end (indexed or failed)
        self._task: asyncio.Task[None] | None = None
        self._touched: set[str] = set()  # collections written since the last optimize
        self._writing: asyncio.Task[None] | None = None  # the previous batch's index writes (worker only)
        self._not_before: dict[str, float] = {}  # job id → when its next attempt may start (monotonic)
        self.leases = LeasedRows(db, IngestJob, running=_RUNNING, ttl=config.lease_seconds)
        # Jobs claimed after another replica had started them: their version may have partial chunks.
        self._resumed: set[str] = set()

    def start(self) -> None:
        """Start working the queue in a background task."""
        self._task = asyncio.create_task(self._work(), name="rag-ingest-worker")
        self.leases.start()

    def wake(self) -> None:
        """New jobs were queued: look at once instead of at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the task and give this replica's claimed jobs back (pending, the attempt not counted), so
        another replica (or the next start) takes them at once; chunks a cut-off write left are deleted by
        whoever takes them."""
        self._task = await cancelled(self._task)
        self._writing = await cancelled(self._writing)
        await self.leases.stop()
        try:
            returned = await self.leases.give_back(status="pending", updated_at=utcnow())
            if returned:
                async with self.db.transaction() as session:
                    await session.execute(
                        update(IngestJob)
                        .where(IngestJob.id.in_(returned), IngestJob.attempts > 0)
                        .values(attempts=IngestJob.attempts - 1)
                    )
                    await session.execute(
                        update(Document).where(Document.job_id.in_(returned)).values(status="pending")
                    )
                log.info("ingestion jobs given back", extra={"jobs": len(returned)})
        except Exception:  # the database already gone: the leases expire and the jobs are taken then
            log.warning("could not give ingestion jobs back; they are retried when their lease expires",
                        exc_info=True)  # fmt: skip

    async def recover(self) -> None:
        """Jobs interrupted mid-way whose lease expired go back to pending; chunks of versions that are
        neither active nor of a job still queued or running (here or on another replica) are deleted."""
        await self.leases.expire_gone_holders()  # e.g. this server's predecessor, killed on this host
        async with self.db.transaction() as session:
            await session.execute(
                update(IngestJob)
                .where(self.leases.expired())
                # An owner marks the job as started before, so its claimer deletes the partial chunks it
                # left; a job stuck mid-way with no owner (written before leases existed) gets one too.
                .values(
                    status="pending",
                    lease_expires_at=None,
                    lease_owner=func.coalesce(IngestJob.lease_owner, "recovered"),
                    updated_at=utcnow(),
                )
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
            queued = set(
                (
                    await session.scalars(
                        select(IngestJob.id).where(IngestJob.status.in_(("pending", *_RUNNING)))
                    )
                ).all()
            )
        for collection_id in await asyncio.to_thread(self.store.collections):
            if collection_id not in collections:
                await self.indexes.drop(collection_id)
                continue
            # A queued job's partial chunks are deleted by whoever claims it; a running one's are being
            # written by another replica right now.
            stale = [
                key
                for key in await asyncio.to_thread(self.store.versions, collection_id)
                if key not in active and key[1] not in queued
            ]
            for document_id, version in stale:
                await asyncio.to_thread(self.store.delete_version, collection_id, document_id, version)
            if stale or not self.keywords.exists(collection_id):
                await self.indexes.rebuild_keywords(collection_id)
        young = time.time() - _UPLOAD_GRACE
        for path in self.uploads.iterdir():
            # Another replica writes a job's file before committing its row: only old orphans go.
            if path.name not in queued and path.stat().st_mtime < young:
                path.unlink(missing_ok=True)

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
                # A job pausing before its next attempt is looked at when its pause ends.
                pause = min(self._not_before.values(), default=math.inf) - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.05, min(2.0, pause)))

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
        try:
            await self._ingest(jobs, overlap=overlap)
        except Exception as exc:
            # A failure that no step isolated (the database gone, a bug): the batch's unfinished jobs are
            # retried or failed, instead of staying "embedding" until the next restart.
            log.exception("ingestion batch failed", extra={"jobs": len(jobs)})
            await self._retry_or_fail(jobs, _reason("ingestion failed", exc))
        return len(jobs)

    async def _ingest(self, jobs: list[IngestJob], *, overlap: bool) -> None:
        work: list[_Work] = []
        # The whole batch is extracted in one worker thread: a hop per document cost ~0.3 s per 150 documents.
        for job, outcome in zip(jobs, await asyncio.to_thread(self._prepare_all, jobs), strict=True):
            if isinstance(outcome, ExtractionError):  # the file's fault: retrying cannot help
                await self._fail(job, str(outcome))
            elif isinstance(outcome, Exception):  # an extractor bug must fail the one job, not the batch
                log.error("extraction crashed", exc_info=outcome, extra={"job_id": job.id})
                await self._fail(job, f"extraction failed: {type(outcome).__name__}: {outcome}")
            else:
                work.append(_Work(job, *outcome))
        if not work:
            return
        await self._set_status([w.job.id for w in work], "embedding")
        work = await self._embed_isolated(work)
        if not work:
            return
        # Versions must become active in batch order: the previous batch's writes finish first.
        await self._finish_writes()
        self._writing = asyncio.create_task(self._write(work))
        if not overlap:
            await self._finish_writes()

    async def _embed_isolated(self, work: list[_Work]) -> list[_Work]:
        """Embed the batch's chunks in one stream; when that fails, each document alone, so one document
        that the embedder refuses fails (after its retries) without the others. Returns the documents that
        were embedded and are still wanted."""
        try:
            return await self._embed_work(work)
        except Exception as exc:
            if len(work) == 1:
                await self._retry_or_fail([work[0].job], _reason("embedding failed", exc))
                return []
            log.warning("batch embedding failed; embedding its documents one by one", exc_info=exc)
        embedded: list[_Work] = []
        for item in work:
            try:
                embedded += await self._embed_work([item])
            except Exception as exc:
                await self._retry_or_fail([item.job], _reason("embedding failed", exc))
        return embedded

    async def _embed_work(self, work: list[_Work]) -> list[_Work]:
        """Set the vectors of `work`'s chunk records, one stream of texts across its documents so the
        embedder always gets full batches. Before each call the documents deleted or replaced meanwhile are
        dropped (their remaining texts are not embedded); returns the others."""
        texts = [(i, k) for i, item in enumerate(work) for k in range(len(item.texts))]
        # Texts of similar length go in the same call: the encoder pads each batch to its longest text, so
        # a mixed call wastes compute on padding (the raw model, given every text at once, sorts them too).
        order = sorted(texts, key=lambda ik: len(work[ik[0]].texts[ik[1]]))
        live = set(range(len(work)))
        while order:
            gone = await self._gone([work[i].job for i in live])
            if gone:
                live = {i for i in live if work[i].job.id not in gone}
                order = [ik for ik in order if ik[0] in live]
                log.info("ingestion cancelled", extra={"jobs": sorted(gone)})
                if not order:
                    break
            picked, order = order[: self.config.embed_batch], order[self.config.embed_batch :]
            result = await self.gateway.embed(self.config.embedder, [work[i].texts[k] for i, k in picked])
            for (i, k), vector in zip(picked, result.vectors, strict=True):
                object.__setattr__(work[i].records[k], "vector", np.asarray(vector, dtype=np.float32))
        return [item for i, item in enumerate(work) if i in live]

    async def _gone(self, jobs: list[IngestJob]) -> set[str]:
        """Ids of `jobs` whose document was deleted or has a newer version queued: work on them is waste.
        They are settled here (a replaced version's job fails as superseded; a deleted one has no rows)."""
        if not jobs:
            return set()
        ids = [j.id for j in jobs]
        async with self.db.transaction() as session:
            current = set(
                (await session.scalars(select(Document.job_id).where(Document.job_id.in_(ids)))).all()
            )
            gone = set(ids) - current
            if gone:
                await session.execute(
                    update(IngestJob)
                    .where(IngestJob.id.in_(gone), IngestJob.status.in_(("extracting", "embedding")))
                    .values(status="failed", error="superseded by a newer version", updated_at=utcnow())
                )
        for job in jobs:
            if job.id in gone:
                await asyncio.to_thread(Path(job.upload_path).unlink, missing_ok=True)
        if gone:
            self._progress.set()
        return gone

    async def _finish_writes(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def _write(self, work: list[_Work]) -> None:
        """Write a batch's embedded chunks to the indexes, then make its versions active. Never raises: a
        collection whose writes fail is written one document at a time, and a document that fails alone is
        retried or failed."""
        try:
            by_collection: dict[str, list[_Work]] = {}
            for item in work:
                by_collection.setdefault(item.job.collection_id, []).append(item)
            written: list[_Work] = []
            for collection_id, items in by_collection.items():
                written += await self._write_collection(collection_id, items)
            stale = await self._activate(written)
            for collection_id, pairs in _group(stale).items():
                async with self.indexes.lock(collection_id):
                    for document_id, version in pairs:
                        await asyncio.to_thread(
                            self.store.delete_version, collection_id, document_id, version
                        )
                    await self.indexes.rebuild_keywords(collection_id)
            for item in written:
                await asyncio.to_thread(Path(item.job.upload_path).unlink, missing_ok=True)
            self._touched.update(item.job.collection_id for item in written)
        except Exception as exc:
            log.exception("writing an ingestion batch failed")
            await self._retry_or_fail([w.job for w in work], _reason("indexing failed", exc))
        self._progress.set()

    async def _write_collection(self, collection_id: str, items: list[_Work]) -> list[_Work]:
        """Add one collection's new chunks to both indexes; returns the documents written."""
        async with self.indexes.lock(collection_id):
            # Checked under the lock that deletion takes to clear the indexes: a document deleted before
            # this point is not written (it would bring a dropped collection back), one deleted after it is
            # cleared by the deletion itself.
            gone = await self._gone([item.job for item in items])
            items = [item for item in items if item.job.id not in gone]
            if not items:
                return []
            resumed = [item for item in items if item.job.id in self._resumed]
            if resumed:
                # Another replica started these versions and died: what it wrote of them goes first. One
                # scan finds which it wrote at all (a delete per version costs a commit each).
                self._resumed.difference_update(item.job.id for item in resumed)
                present = await asyncio.to_thread(self.store.versions, collection_id)
                await self._remove(
                    collection_id,
                    [item for item in resumed if (item.job.document_id, item.job.id) in present],
                )
            try:
                await self._add(collection_id, items)
                return items
            except Exception as exc:
                await self._remove(collection_id, items)
                if len(items) == 1:
                    await self._retry_or_fail([items[0].job], _reason("indexing failed", exc))
                    return []
                log.warning(
                    "index writes failed; writing the collection's documents one by one", exc_info=exc
                )
            written = []
            for item in items:
                try:
                    await self._add(collection_id, [item])
                    written.append(item)
                except Exception as exc:
                    await self._remove(collection_id, [item])
                    await self._retry_or_fail([item.job], _reason("indexing failed", exc))
            return written

    async def _add(self, collection_id: str, items: list[_Work]) -> None:
        records = [r for item in items for r in item.records]
        await asyncio.to_thread(self.store.add, collection_id, records)
        await self.indexes.rebuild_keywords(collection_id)

    async def _remove(self, collection_id: str, items: list[_Work]) -> None:
        """Take back what a failed write may have added (its versions are not active, so no query saw it)."""
        try:
            for item in items:
                await asyncio.to_thread(
                    self.store.delete_version, collection_id, item.job.document_id, item.job.id
                )
        except Exception:
            log.exception("removing a failed write's chunks failed; the next start removes them")

    async def _optimize(self) -> None:
        """Once the queue is empty: compact and (re)build ANN indexes of the collections written since the
        last time, not after every batch (documents arriving one by one would make every batch the last)."""
        touched, self._touched = self._touched, set()
        for collection_id in touched:
            async with self.indexes.lock(collection_id):
                await asyncio.to_thread(self.store.optimize, collection_id)

    async def _claim(self) -> list[IngestJob]:
        async with self.db.transaction() as session:
            now = utcnow()
            query = (
                select(IngestJob)
                # Queued, or left running by a replica whose lease on it expired (it died mid-batch).
                .where(or_(IngestJob.status == "pending", self.leases.expired(now)))
                .order_by(IngestJob.created_at, IngestJob.id)
                .limit(self.config.worker_batch)
            )
            waiting = self._waiting()
            if waiting:  # failed jobs whose pause before the next attempt has not passed
                query = query.where(IngestJob.id.not_in(waiting))
            jobs = list((await session.scalars(claimable(query, self.db))).all())
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
            lease = self.leases.lease_values(now)
            for job in jobs:
                if latest.get(job.document_id) != job.id:
                    job.status, job.error, job.updated_at = "failed", "superseded by a newer version", now
                elif job.attempts >= _MAX_ATTEMPTS:
                    # Only a job interrupted mid-way (a crash) gets here: a failed attempt is failed or
                    # retried by the worker itself (_retry_or_fail).
                    job.status, job.updated_at = "failed", now
                    job.error = f"gave up after {job.attempts} interrupted attempts"
                    await session.execute(
                        update(Document)
                        .where(Document.id == job.document_id)
                        .values(status="failed", error=job.error, updated_at=now)
                    )
                else:
                    if job.lease_owner is not None:  # started before, here or elsewhere
                        self._resumed.add(job.id)
                    job.status, job.attempts, job.updated_at = "extracting", job.attempts + 1, now
                    job.lease_owner, job.lease_expires_at = lease["lease_owner"], lease["lease_expires_at"]
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
        title_prefix = clip(self.counter, title, self.config.title_tokens)
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

    async def embed(self, texts: list[str]) -> list[np.ndarray]:
        """Vectors of `texts` from the embedder, in order."""
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

    def _waiting(self) -> list[str]:
        """Jobs of this process pausing before their next attempt (expired pauses are forgotten)."""
        now = time.monotonic()
        self._not_before = {job: t for job, t in self._not_before.items() if t > now}
        return list(self._not_before)

    async def _retry_or_fail(self, jobs: list[IngestJob], reason: str) -> None:
        """A failed attempt: the jobs that still run go back to pending for another attempt after a pause
        (the reason shown meanwhile), or are failed with the reason once out of attempts. Jobs already
        indexed, failed or deleted are left alone."""
        now = utcnow()
        failed: list[IngestJob] = []
        async with self.db.transaction() as session:
            for job in jobs:
                if job.attempts >= _MAX_ATTEMPTS:
                    error = f"{reason} (gave up after {job.attempts} attempts)"
                    if await self._settle(session, job, "failed", error, now, only_running=True):
                        failed.append(job)
                    continue
                error = f"attempt {job.attempts} of {_MAX_ATTEMPTS} failed, retrying: {reason}"
                if await self._settle(session, job, "pending", error, now, only_running=True):
                    pause = _RETRY_PAUSE * 2 ** (job.attempts - 1)
                    self._not_before[job.id] = time.monotonic() + pause
        for job in failed:
            await asyncio.to_thread(Path(job.upload_path).unlink, missing_ok=True)
        if jobs:
            log.warning("ingestion attempt failed", extra={"jobs": [j.id for j in jobs], "reason": reason})
        self._progress.set()

    async def _settle(
        self,
        session: AsyncSession,
        job: IngestJob,
        status: str,
        error: str,
        now: datetime,
        *,
        only_running: bool = False,
    ) -> bool:
        """Set a job, and its document while the document still points at it, to `status` with `error`; a
        failure is published as an event in the same transaction. With `only_running`, a job that is no longer
        extracting or embedding (indexed, failed, deleted meanwhile) is left alone and False returned."""
        query = update(IngestJob).where(IngestJob.id == job.id)
        if only_running:
            query = query.where(IngestJob.status.in_(("extracting", "embedding")))
        changed = await session.execute(query.values(status=status, error=error, updated_at=now))
        if only_running and not changed.rowcount:
            return False
        await session.execute(
            update(Document)
            .where(Document.id == job.document_id, Document.job_id == job.id)
            .values(status=status, error=error, updated_at=now)
        )
        if status == "failed":
            await self.bus.publish(
                events.DocumentIngestionFailed(
                    document_id=job.document_id, collection_id=job.collection_id, job_id=job.id, reason=error
                ),
                session=session,
            )
        return True

    async def _fail(self, job: IngestJob, reason: str) -> None:
        async with self.db.transaction() as session:
            await self._settle(session, job, "failed", reason, utcnow())
        await asyncio.to_thread(Path(job.upload_path).unlink, missing_ok=True)
        self._progress.set()

    async def _activate(self, work: list[_Work]) -> list[tuple[str, str, str]]:
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
                        select(Document).where(Document.id.in_({w.job.document_id for w in work}))
                    )
                ).all()
            }
            job_ids = [w.job.id for w in work]
            rows = {
                r.id: r
                for r in (await session.scalars(select(IngestJob).where(IngestJob.id.in_(job_ids)))).all()
            }
            for item in work:
                job, title, records = item.job, item.title, item.records
                document = documents.get(job.document_id)
                row = rows.get(job.id)
                if document is None or row is None or document.job_id != job.id:
                    # Deleted, or a newer version arrived while this one was embedded.
                    stale.append((job.collection_id, job.document_id, job.id))
                    if row is not None:
                        row.status, row.error, row.updated_at = "failed", "superseded by a newer version", now
                    continue
                if row.lease_owner != self.leases.holder or row.status not in _RUNNING:
                    # Our lease lapsed (this process stalled past it) and another replica took the job, or
                    # it was settled meanwhile: that replica's version of events wins; ours is not shown.
                    log.warning("ingestion job was taken over; dropping this copy", extra={"job_id": job.id})
                    continue
                old = document.active_version
                if old is not None:
                    stale.append((job.collection_id, document.id, old))
                document.active_version = job.id
                document.status, document.error = "indexed", None
                document.title = title or default_title(document.source)
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


def _reason(step: str, exc: BaseException) -> str:
    """A failure reason a user can read: the gateway's message, or the exception named."""
    if isinstance(exc, HearthError):
        return f"{step}: {exc.message}"
    return f"{step}: {type(exc).__name__}: {exc}"


def clip(counter: WordPieceCounter, text: str, tokens: int) -> str:
    """The longest prefix of `text` (whole words) of at most `tokens` word pieces."""
    if not text or tokens <= 0:
        return ""
    total, end = 0, 0
    for _start, stop, pieces in counter.words(text):
        if total + pieces > tokens:
            break
        total += pieces
        end = stop
    return text[:end]


def _group(stale: Iterable[tuple[str, str, str]]) -> dict[str, list[tuple[str, str]]]:
    grouped: dict[str, list[tuple[str, str]]] = {}
    for collection_id, document_id, version in stale:
        grouped.setdefault(collection_id, []).append((document_id, version))
    return grouped
