"""The two indexes of every collection, the vector store and the BM25 keyword index, written under one
lock per collection (worker batches and deletions) so the keyword index is rebuilt from a settled store.

With replicas on PostgreSQL sharing the indexes (a shared data directory, or a Qdrant server), the lock is
also a PostgreSQL advisory lock: one replica's rebuild of the keyword index never interleaves with another's
writes, which would leave an index missing the other's chunks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from hearth.platform.db import Database
from hearth.platform.kit.leases import advisory_lock
from hearth.rag.keyword import KeywordIndex
from hearth.rag.stores import VectorStore


class Indexes:
    def __init__(self, *, store: VectorStore, keywords: KeywordIndex, db: Database | None = None) -> None:
        self.store = store
        self.keywords = keywords
        self.db = db  # None: this process is the only writer (no cross-replica lock)
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def lock(self, collection_id: str) -> AsyncIterator[None]:
        """Hold the lock that serialises this collection's index writes, here and across replicas."""
        async with self._locks.setdefault(collection_id, asyncio.Lock()):
            if self.db is None:
                yield
                return
            async with advisory_lock(self.db, f"rag.index.{collection_id}"):
                if not self.db.is_sqlite:
                    # Another replica may have written since this one opened the collection: a write (or a
                    # compaction) from a stale handle conflicts, and a keyword rebuild would miss its rows.
                    self.store.refresh(collection_id)
                yield

    async def rebuild_keywords(self, collection_id: str) -> None:
        """Rebuild the collection's keyword index from the vector store's rows (caller holds the lock)."""
        rows = await asyncio.to_thread(lambda: list(self.store.rows(collection_id)))
        await asyncio.to_thread(self.keywords.rebuild, collection_id, rows)

    async def drop(self, collection_id: str) -> None:
        """Remove a collection from both indexes."""
        async with self.lock(collection_id):
            await asyncio.to_thread(self.store.drop, collection_id)
            self.keywords.drop(collection_id)

    async def delete_document(self, collection_id: str, document_id: str) -> None:
        """Remove every version of a document from both indexes."""
        async with self.lock(collection_id):
            await asyncio.to_thread(self.store.delete_document, collection_id, document_id)
            await self.rebuild_keywords(collection_id)

    async def close(self) -> None:
        await asyncio.to_thread(self.store.close)
