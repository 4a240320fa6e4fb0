"""The two indexes of every collection, the vector store and the BM25 keyword index, written under one
lock per collection (worker batches and deletions) so the keyword index is rebuilt from a settled store."""

from __future__ import annotations

import asyncio

from hearth.rag.keyword import KeywordIndex
from hearth.rag.stores import VectorStore


class Indexes:
    def __init__(self, *, store: VectorStore, keywords: KeywordIndex) -> None:
        self.store = store
        self.keywords = keywords
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, collection_id: str) -> asyncio.Lock:
        """The lock that serialises this collection's index writes."""
        return self._locks.setdefault(collection_id, asyncio.Lock())

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
