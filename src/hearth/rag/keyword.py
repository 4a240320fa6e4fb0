"""BM25 keyword index per collection with `bm25s` (English stemming and stopwords), and the collection's chunk
payloads next to it, persisted on disk.

An index is rebuilt from the vector store's chunk rows after each ingestion batch or deletion, then saved
next to the chunk payloads it scores (an Arrow IPC file, memory-mapped when loaded), and loaded back at
start-up. Queries read the payloads of their final hits from that file, so the search stage needs no second
round trip to the vector store. The index may hold chunks of versions that are not (or no longer) active;
the service drops those hits, exactly as it does for vector hits.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hearth.rag.stores import PAYLOAD, Hit

_ROWS = "rows.arrow"
_SCHEMA = pa.schema(
    [
        ("chunk_id", pa.string()),
        ("document_id", pa.string()),
        ("version", pa.string()),
        ("position", pa.int32()),
        ("page", pa.int32()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("metadata", pa.string()),
    ]
)


@dataclass
class _Index:
    retriever: Any
    rows: pa.Table  # the payloads, memory-mapped
    chunk_ids: list[str]
    row_of: dict[str, int]
    document_ids: np.ndarray  # per corpus row, for filters
    versions: list[str]
    stamp: tuple[int, int]  # (inode, mtime) of the rows file it was loaded from

    @classmethod
    def of(cls, retriever: Any, rows: pa.Table, stamp: tuple[int, int]) -> _Index:
        chunk_ids = rows.column("chunk_id").to_pylist()
        return cls(
            retriever,
            rows,
            chunk_ids,
            {c: i for i, c in enumerate(chunk_ids)},
            np.array(rows.column("document_id").to_pylist()),
            rows.column("version").to_pylist(),
            stamp,
        )


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased words without English stopwords, Snowball-stemmed: the same for documents and queries."""
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)


_STEMMER: Any = None


def _stemmer() -> Any:
    # Building a Snowball stemmer costs more than stemming a query: build it once.
    global _STEMMER
    if _STEMMER is None:
        import Stemmer

        _STEMMER = Stemmer.Stemmer("english")
    return _STEMMER


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


class KeywordIndex:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._indexes: dict[str, _Index | None] = {}
        self._lock = threading.Lock()

    def _dir(self, collection_id: str) -> Path:
        return self.root / collection_id

    def rebuild(self, collection_id: str, rows: list[dict[str, Any]]) -> None:
        """Index `rows` (the chunk payload fields of `stores.PAYLOAD`) and persist the index."""
        import bm25s

        if not rows:
            self.drop(collection_id)
            return
        # The title is part of what a chunk is about.
        tokens = tokenize([f"{r['title']}\n{r['text']}" for r in rows])
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        table = pa.Table.from_pylist([{k: r[k] for k in PAYLOAD} for r in rows], schema=_SCHEMA)
        tmp = self.root / f".{collection_id}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        retriever.save(str(tmp))
        with pa.OSFile(str(tmp / _ROWS), "wb") as sink, pa.ipc.new_file(sink, _SCHEMA) as writer:
            writer.write_table(table)
        with self._lock:
            # Swap directories so a crash leaves either the old or the new index, never half of one.
            old = self.root / f".{collection_id}.old"
            shutil.rmtree(old, ignore_errors=True)
            if self._dir(collection_id).exists():
                self._dir(collection_id).rename(old)
            tmp.rename(self._dir(collection_id))
            shutil.rmtree(old, ignore_errors=True)
            path = self._dir(collection_id) / _ROWS
            self._indexes[collection_id] = _Index.of(retriever, self._read(path), _stamp(path) or (0, 0))

    @staticmethod
    def _read(path: Path) -> pa.Table:
        return pa.ipc.open_file(pa.memory_map(str(path))).read_all()

    def _load(self, collection_id: str) -> _Index | None:
        path = self._dir(collection_id) / _ROWS
        stamp = _stamp(path)
        cached = self._indexes.get(collection_id)
        if collection_id in self._indexes and (
            stamp is None or (cached is not None and cached.stamp == stamp)
        ):
            # Unchanged on disk (or mid-swap by another process: keep what we have).
            return cached
        import bm25s

        index = None
        if stamp is not None:
            try:
                index = _Index.of(bm25s.BM25.load(str(self._dir(collection_id))), self._read(path), stamp)
            except (FileNotFoundError, OSError, pa.ArrowInvalid):
                return cached  # swapped away while we read it; the next query loads the new one
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
        vocab = index.retriever.vocab_dict
        known = [vocab[t] for t in tokens if t in vocab]
        if not known:
            return []
        scores = index.retriever.get_scores_from_ids(known)
        if document_ids is not None:
            scores = scores * np.isin(index.document_ids, list(document_ids))
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [
            Hit(index.chunk_ids[row], str(index.document_ids[row]), index.versions[row], float(scores[row]))
            for row in top.tolist()
            if scores[row] > 0
        ]

    def payloads(self, collection_id: str, chunk_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored payloads (`stores.PAYLOAD` fields) of those chunks this index holds."""
        index = self._load(collection_id)
        if index is None:
            return {}
        rows = [index.row_of[c] for c in chunk_ids if c in index.row_of]
        if not rows:
            return {}
        return {row["chunk_id"]: row for row in index.rows.take(rows).to_pylist()}

    def drop(self, collection_id: str) -> None:
        with self._lock:
            self._indexes[collection_id] = None
            shutil.rmtree(self._dir(collection_id), ignore_errors=True)

    def exists(self, collection_id: str) -> bool:
        return (self._dir(collection_id) / _ROWS).exists()
