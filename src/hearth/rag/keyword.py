"""BM25 keyword index per collection with `bm25s` (English stemming and stopwords), persisted on disk.

An index is rebuilt from the vector store's chunk texts after each ingestion batch or deletion, then saved
next to the chunk ids it scores, and loaded back at start-up. It may hold chunks of versions that are not
(or no longer) active; the service drops those hits, exactly as it does for vector hits.
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hearth.rag.stores import Hit


@dataclass
class _Index:
    retriever: Any
    chunk_ids: list[str]
    document_ids: np.ndarray  # per corpus row, for filters
    versions: list[str]


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased words without English stopwords, Snowball-stemmed: the same for documents and queries."""
    import bm25s
    import Stemmer

    return bm25s.tokenize(
        texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), return_ids=False, show_progress=False
    )


class KeywordIndex:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._indexes: dict[str, _Index | None] = {}
        self._lock = threading.Lock()

    def _dir(self, collection_id: str) -> Path:
        return self.root / collection_id

    def rebuild(self, collection_id: str, rows: list[dict[str, Any]]) -> None:
        """Index `rows` (chunk_id, document_id, version, title, text) and persist the index."""
        import bm25s

        if not rows:
            self.drop(collection_id)
            return
        # The title is part of what a chunk is about.
        tokens = tokenize([f"{r['title']}\n{r['text']}" for r in rows])
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        index = _Index(
            retriever,
            [r["chunk_id"] for r in rows],
            np.array([r["document_id"] for r in rows]),
            [r["version"] for r in rows],
        )
        tmp = self.root / f".{collection_id}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        retriever.save(str(tmp))
        (tmp / "rows.json").write_text(
            json.dumps(
                {
                    "chunk_ids": index.chunk_ids,
                    "document_ids": index.document_ids.tolist(),
                    "versions": index.versions,
                }
            )
        )
        with self._lock:
            # Swap directories so a crash leaves either the old or the new index, never half of one.
            old = self.root / f".{collection_id}.old"
            shutil.rmtree(old, ignore_errors=True)
            if self._dir(collection_id).exists():
                self._dir(collection_id).rename(old)
            tmp.rename(self._dir(collection_id))
            shutil.rmtree(old, ignore_errors=True)
            self._indexes[collection_id] = index

    def _load(self, collection_id: str) -> _Index | None:
        if collection_id in self._indexes:
            return self._indexes[collection_id]
        import bm25s

        path = self._dir(collection_id)
        index = None
        if (path / "rows.json").exists():
            rows = json.loads((path / "rows.json").read_text())
            index = _Index(
                bm25s.BM25.load(str(path)),
                rows["chunk_ids"],
                np.array(rows["document_ids"]),
                rows["versions"],
            )
        with self._lock:
            self._indexes[collection_id] = index
        return index

    def search(
        self, collection_id: str, query: str, k: int, document_ids: set[str] | None = None
    ) -> list[Hit]:
        index = self._load(collection_id)
        if index is None or (document_ids is not None and not document_ids):
            return []
        tokens = tokenize([query])[0]
        # Words the corpus never saw cannot score; a query of only those (or only stopwords) matches nothing.
        known = [[t for t in tokens if t in index.retriever.vocab_dict]]
        if not known[0]:
            return []
        mask = None
        if document_ids is not None:
            mask = np.isin(index.document_ids, list(document_ids)).astype(np.float32)
        k = min(k, len(index.chunk_ids))
        docs, scores = index.retriever.retrieve(
            known, k=k, show_progress=False, weight_mask=mask, n_threads=1
        )
        hits = []
        for row, score in zip(docs[0].tolist(), scores[0].tolist(), strict=True):
            if score <= 0:
                continue
            hits.append(
                Hit(index.chunk_ids[row], str(index.document_ids[row]), index.versions[row], float(score))
            )
        return hits

    def drop(self, collection_id: str) -> None:
        with self._lock:
            self._indexes[collection_id] = None
            shutil.rmtree(self._dir(collection_id), ignore_errors=True)

    def exists(self, collection_id: str) -> bool:
        return (self._dir(collection_id) / "rows.json").exists()
