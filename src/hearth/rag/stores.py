"""Vector stores behind one small protocol (LanceDB embedded in lance.py, the default; Qdrant in qdrant.py).

Each Hearth collection is one table / Qdrant collection. Every chunk row carries its document id and the
document *version* (ingestion job id) that wrote it, so a store can be reconciled against SQL after a crash.
Calls are synchronous; the service runs them in worker threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

PAYLOAD = ("chunk_id", "document_id", "version", "position", "page", "title", "text", "metadata")


@dataclass(frozen=True)
class ChunkRecord:
    chunk_id: str
    document_id: str
    version: str
    position: int
    page: int  # -1: unknown
    title: str
    text: str
    metadata: str  # the document's metadata, JSON
    vector: np.ndarray


class Hit(NamedTuple):
    # A tuple, not a dataclass: a hybrid query makes a few hundred of these, and a frozen dataclass's
    # __init__ cost a tenth of the search stage.
    chunk_id: str
    document_id: str
    version: str
    score: float


def chunk_key(chunk_id: str) -> int:
    """A chunk's 60-bit integer key (the first 15 hex digits of its uuid4 id). LanceDB returns this small
    column instead of three id strings; the keyword index maps it back to the chunk."""
    return int(chunk_id[:15], 16)


class VectorStore(Protocol):
    def add(self, collection_id: str, records: list[ChunkRecord]) -> None: ...
    def search(
        self,
        collection_id: str,
        vector: np.ndarray,
        k: int,
        document_ids: set[str] | None = None,
    ) -> list[Hit]: ...
    def search_keys(
        self,
        collection_id: str,
        vector: np.ndarray,
        k: int,
        document_ids: set[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...
    def fetch(self, collection_id: str, chunk_ids: list[str]) -> dict[str, dict[str, Any]]: ...
    def versions(self, collection_id: str) -> dict[tuple[str, str], int]: ...
    def rows(self, collection_id: str) -> Iterator[dict[str, Any]]: ...
    def delete_version(self, collection_id: str, document_id: str, version: str) -> None: ...
    def delete_document(self, collection_id: str, document_id: str) -> None: ...
    def drop(self, collection_id: str) -> None: ...
    def collections(self) -> list[str]: ...
    def optimize(self, collection_id: str) -> None: ...
    def refresh(self, collection_id: str) -> None: ...
    def close(self) -> None: ...
