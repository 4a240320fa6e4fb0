"""The rag context's service: collections and sharing, durable ingestion jobs, hybrid retrieval, reranking
and cited answers, each in its own module; `RagService` composes them for routes, the CLI and other contexts.

Per-user reads go through `repository.CollectionRepository` (owned or shared), so no query forgets whose
data it reads. Ingestion and the version swap that keeps queries consistent are described in `worker.py`.
"""

from __future__ import annotations

from typing import Any

from hearth.auth.ports import UserDirectory
from hearth.events.buffer import EventBuffer
from hearth.events.bus import EventBus
from hearth.gateway.service import Gateway
from hearth.platform.db import Database
from hearth.rag.answers import Answers, answer_messages, checked
from hearth.rag.chunking import WordPieceCounter
from hearth.rag.collections import Collections
from hearth.rag.config import RagConfig
from hearth.rag.documents import Documents
from hearth.rag.indexes import Indexes
from hearth.rag.keyword import KeywordIndex
from hearth.rag.schemas import RagSource
from hearth.rag.search import Search, SearchResult
from hearth.rag.stores import VectorStore
from hearth.rag.uploads import FileUpload
from hearth.rag.worker import IngestWorker

__all__ = ["FileUpload", "RagConfig", "RagService", "SearchResult"]


class RagService:
    """Implements `hearth.rag.ports.Retriever` for chat and voice; the rest is for rag's routes and CLI."""

    answer_messages = staticmethod(answer_messages)

    @staticmethod
    def check_answer(*, question: str, answer: str, sources: list[RagSource]) -> dict[str, Any]:
        return checked(question, answer, sources)

    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        gateway: Gateway,
        store: VectorStore,
        keywords: KeywordIndex,
        config: RagConfig,
        users: UserDirectory,
        counter: WordPieceCounter | None = None,
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.store = store
        self.keywords = keywords
        self.config = config
        self.counter = counter or WordPieceCounter.default()
        self.uploads = config.uploads
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.indexes = Indexes(store=store, keywords=keywords, db=db)
        self.worker = IngestWorker(
            db=db, bus=bus, gateway=gateway, indexes=self.indexes, config=config, counter=self.counter
        )
        self.collections = Collections(
            db=db, bus=bus, users=users, indexes=self.indexes, uploads=self.uploads
        )
        self.documents = Documents(
            db=db, bus=bus, indexes=self.indexes, uploads=self.uploads, on_queued=self.worker.wake
        )
        self.searcher = Search(db=db, gateway=gateway, indexes=self.indexes, config=config)
        # RAGQueryExecuted events, stored in batches (events/buffer.py) rather than one commit per query.
        self.query_events = EventBuffer(bus)
        self.answers = Answers(events=self.query_events, gateway=gateway, search=self.searcher, config=config)
        # The service's methods are its parts' own bound methods: no extra call or await on the search path.
        self.create_collection = self.collections.create_collection
        self.list_collections = self.collections.list_collections
        self.get_collection = self.collections.get_collection
        self.delete_collection = self.collections.delete_collection
        self.share = self.collections.share
        self.unshare = self.collections.unshare
        self.ingest_file = self.documents.ingest_file
        self.ingest_files = self.documents.ingest_files
        self.ingest_text = self.documents.ingest_text
        self.ingest_texts = self.documents.ingest_texts
        self.list_documents = self.documents.list_documents
        self.get_document = self.documents.get_document
        self.get_job = self.documents.get_job
        self.delete_document = self.documents.delete_document
        self.recover = self.worker.recover
        self.run_batch = self.worker.run_batch
        self.wait_idle = self.worker.wait_idle
        self.retrieve = self.searcher.retrieve
        self.search = self.searcher.search
        self.search_stage = self.searcher.search_stage
        self.query = self.answers.query
        self.query_stream = self.answers.query_stream

    async def start(self, *, worker: bool = True) -> None:
        """Reconcile the indexes with SQL after a crash, then start the ingestion worker."""
        await self.worker.recover()
        self.query_events.start()
        if worker:
            self.worker.start()

    async def stop(self) -> None:
        """Stop the worker (an unfinished batch is retried at the next start) and close the vector store."""
        await self.worker.stop()
        await self.query_events.stop()  # what queries reported in the last moment is stored, not lost
        await self.indexes.close()
