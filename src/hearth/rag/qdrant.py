"""Qdrant through qdrant-client, a server or its local mode (see hearth.rag.stores)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hearth.rag.stores import PAYLOAD, ChunkRecord, Hit, chunk_key


class QdrantStore:
    """Qdrant through qdrant-client: a server or cluster (`url`) or the client's local mode (`path`), which
    speaks the same API. One Qdrant collection per Hearth collection, cosine distance."""

    def __init__(
        self, *, url: str | None = None, path: Path | None = None, api_key: str | None = None
    ) -> None:
        from qdrant_client import QdrantClient

        self.remote = bool(url)
        if url:
            self.client = QdrantClient(url=url, api_key=api_key)
        else:
            assert path is not None
            path.mkdir(parents=True, exist_ok=True)
            self.client = QdrantClient(path=str(path))
        # Local mode is a single in-process object; serialise calls to it.
        self._lock = threading.RLock()

    @staticmethod
    def _name(collection_id: str) -> str:
        return f"hearth_{collection_id}"

    def _exists(self, collection_id: str) -> bool:
        return bool(self.client.collection_exists(self._name(collection_id)))

    def add(self, collection_id: str, records: list[ChunkRecord]) -> None:
        if not records:
            return
        from qdrant_client import models

        with self._lock:
            if not self._exists(collection_id):
                self.client.create_collection(
                    self._name(collection_id),
                    vectors_config=models.VectorParams(
                        size=len(records[0].vector), distance=models.Distance.COSINE
                    ),
                )
                if self.remote:  # local mode has no payload indexes (and warns)
                    self.client.create_payload_index(self._name(collection_id), "document_id", "keyword")
            points = [
                models.PointStruct(
                    id=str(uuid.UUID(hex=r.chunk_id)),
                    vector=np.asarray(r.vector, dtype=np.float32).tolist(),
                    payload={name: getattr(r, name) for name in PAYLOAD},
                )
                for r in records
            ]
            self.client.upsert(self._name(collection_id), points=points, wait=True)

    def optimize(self, collection_id: str) -> None:
        return None  # Qdrant builds its HNSW index itself

    def refresh(self, collection_id: str) -> None:
        return None  # a Qdrant server is shared; local mode is one process's own

    def _doc_filter(self, document_ids: Iterable[str]) -> Any:
        from qdrant_client import models

        return models.Filter(
            must=[models.FieldCondition(key="document_id", match=models.MatchAny(any=list(document_ids)))]
        )

    def _query(
        self, collection_id: str, vector: np.ndarray, k: int, document_ids: set[str] | None, payload: bool
    ) -> list[Any]:
        if document_ids is not None and not document_ids:
            return []
        with self._lock:
            if not self._exists(collection_id):
                return []
            return self.client.query_points(
                self._name(collection_id),
                query=np.asarray(vector, dtype=np.float32).tolist(),
                limit=k,
                query_filter=self._doc_filter(document_ids) if document_ids is not None else None,
                with_payload=["chunk_id", "document_id", "version"] if payload else False,
            ).points

    def search(
        self,
        collection_id: str,
        vector: np.ndarray,
        k: int,
        document_ids: set[str] | None = None,
    ) -> list[Hit]:
        return [
            Hit(p.payload["chunk_id"], p.payload["document_id"], p.payload["version"], float(p.score))
            for p in self._query(collection_id, vector, k, document_ids, payload=True)
        ]

    def search_keys(
        self,
        collection_id: str,
        vector: np.ndarray,
        k: int,
        document_ids: set[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        # A point's id is its chunk's uuid, so no payload is read.
        points = self._query(collection_id, vector, k, document_ids, payload=False)
        keys = np.fromiter(
            (chunk_key(uuid.UUID(str(p.id)).hex) for p in points), dtype=np.int64, count=len(points)
        )
        return keys, np.fromiter((p.score for p in points), dtype=np.float32, count=len(points))

    def fetch(self, collection_id: str, chunk_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not chunk_ids:
            return {}
        with self._lock:
            if not self._exists(collection_id):
                return {}
            points = self.client.retrieve(
                self._name(collection_id), ids=[str(uuid.UUID(hex=c)) for c in chunk_ids], with_payload=True
            )
        return {p.payload["chunk_id"]: dict(p.payload) for p in points}

    def _scroll(
        self, collection_id: str, fields: list[str], *, vectors: bool = False
    ) -> Iterator[dict[str, Any]]:
        with self._lock:
            if not self._exists(collection_id):
                return
            offset = None
            while True:
                points, offset = self.client.scroll(
                    self._name(collection_id),
                    limit=1024,
                    offset=offset,
                    with_payload=fields,
                    with_vectors=vectors,
                )
                for p in points:
                    row = dict(p.payload)
                    if vectors:
                        row["vector"] = np.asarray(p.vector, dtype=np.float32)
                    yield row
                if offset is None:
                    break

    def versions(self, collection_id: str) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for p in self._scroll(collection_id, ["document_id", "version"]):
            key = (p["document_id"], p["version"])
            counts[key] = counts.get(key, 0) + 1
        return counts

    def rows(self, collection_id: str) -> Iterator[dict[str, Any]]:
        """Every chunk's payload fields and its `vector`."""
        yield from self._scroll(collection_id, list(PAYLOAD), vectors=True)

    def _delete(self, collection_id: str, conditions: dict[str, str]) -> None:
        from qdrant_client import models

        with self._lock:
            if not self._exists(collection_id):
                return
            selector = models.FilterSelector(
                filter=models.Filter(
                    must=[
                        models.FieldCondition(key=k, match=models.MatchValue(value=v))
                        for k, v in conditions.items()
                    ]
                )
            )
            self.client.delete(self._name(collection_id), points_selector=selector, wait=True)

    def delete_version(self, collection_id: str, document_id: str, version: str) -> None:
        self._delete(collection_id, {"document_id": document_id, "version": version})

    def delete_document(self, collection_id: str, document_id: str) -> None:
        self._delete(collection_id, {"document_id": document_id})

    def drop(self, collection_id: str) -> None:
        with self._lock:
            if self._exists(collection_id):
                self.client.delete_collection(self._name(collection_id))

    def collections(self) -> list[str]:
        with self._lock:
            names = [c.name for c in self.client.get_collections().collections]
        return [n[len("hearth_") :] for n in names if n.startswith("hearth_")]

    def close(self) -> None:
        with self._lock:
            self.client.close()
