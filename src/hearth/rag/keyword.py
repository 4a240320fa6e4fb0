"""BM25 keyword index per collection with `bm25s` (English stemming and stopwords), and the collection's chunk
payloads and vectors next to it, persisted on disk.

An index is rebuilt from the vector store's chunk rows after each ingestion batch or deletion, then saved
next to the chunk payloads it scores (an Arrow IPC file, memory-mapped when loaded), and loaded back at
start-up. Queries read the payloads of their final hits from that file, so the search stage needs no second
round trip to the vector store. The same file holds each chunk's vector, so hybrid search can re-score its
candidates after pseudo-relevance feedback without asking the vector store again; `row_*.npy` files beside
it hold each chunk's terms, counts and BM25 scores, which feedback reads instead of tokenizing the chunks
again. The index may hold chunks
of versions that are not (or no longer) active; the service drops those hits, exactly as it does for vector
hits.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hearth.rag.stores import PAYLOAD, Hit, chunk_key

_ROWS = "rows.arrow"
_FIELDS = [
    ("chunk_id", pa.string()),
    ("document_id", pa.string()),
    ("version", pa.string()),
    ("position", pa.int32()),
    ("page", pa.int32()),
    ("title", pa.string()),
    ("text", pa.string()),
    ("metadata", pa.string()),
]
_SCHEMA = pa.schema(_FIELDS)
# Question phrasing ("what", "how", "has", "been", "can", "do", "which"...) carries no topic. Queries drop
# the larger English list (NLTK's, as shipped with bm25s); chunks keep the short one, so an index built
# before this choice scores the same way. A query made only of such words falls back to the short list.
QUERY_STOPWORDS = "en_plus"


@dataclass
class RowTerms:
    """Each row's distinct terms in order of first appearance, with their counts and BM25 scores: the
    transpose of bm25s's term → rows score matrix, plus the counts it does not keep. Feedback reads its
    chunks' terms and scores its candidates from here, without tokenizing text or searching each term's row
    list."""

    indptr: np.ndarray  # int64 [rows + 1]: row r's entries are [indptr[r], indptr[r + 1])
    terms: np.ndarray  # int32 vocabulary ids
    counts: np.ndarray  # float32
    scores: np.ndarray  # float32 BM25 score of the term in the row

    _FILES = ("indptr", "terms", "counts", "scores")

    @classmethod
    def build(cls, tokens: list[list[str]], retriever: Any) -> RowTerms:
        """From the rows' tokens and the retriever indexed on them."""
        vocab = retriever.vocab_dict
        size = max(len(vocab), 1)
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        flat = np.fromiter(
            (vocab[t] for row in tokens for t in row), dtype=np.int64, count=int(lengths.sum())
        )
        owner = np.repeat(np.arange(len(tokens), dtype=np.int64), lengths)
        keys, first, counts = np.unique(owner * size + flat, return_index=True, return_counts=True)
        # bm25s keeps scores term by term; keyed by (row, term) they line up with `keys`.
        data, indices, indptr = (np.asarray(retriever.scores[k]) for k in ("data", "indices", "indptr"))
        term_of = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
        score_keys = indices.astype(np.int64) * size + term_of
        order = np.argsort(score_keys)
        scores = np.zeros(len(keys), dtype=np.float32)
        if len(order):
            score_keys = score_keys[order]
            at = np.minimum(np.searchsorted(score_keys, keys), len(score_keys) - 1)
            scores = np.where(score_keys[at] == keys, data[order][at], 0).astype(np.float32)
        # `first` is a position in the flat token list, so sorting by it keeps each row's entries together.
        occurrence = np.argsort(first, kind="stable")
        keys = keys[occurrence]
        per_row = np.bincount(keys // size, minlength=len(tokens))
        return cls(
            np.concatenate(([0], np.cumsum(per_row))).astype(np.int64),
            (keys % size).astype(np.int32),
            counts[occurrence].astype(np.float32),
            scores[occurrence],
        )

    def save(self, folder: Path) -> None:
        for name in self._FILES:
            np.save(folder / f"row_{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> RowTerms | None:
        """Memory-mapped; None for an index written before these files existed."""
        try:
            # Plain views of the maps: indexing an np.memmap goes through Python-level hooks each time.
            maps = [np.load(folder / f"row_{name}.npy", mmap_mode="r") for name in cls._FILES]
            return cls(*(np.asarray(m) for m in maps))
        except FileNotFoundError:
            return None

    def entries(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The entry positions of these rows, and for each entry its index in `rows`."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        owner = np.repeat(np.arange(len(rows)), lengths)
        where = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(
            starts - np.cumsum(lengths) + lengths, lengths
        )
        return where, owner


@dataclass
class Index:
    """A collection's keyword index as loaded: bm25s's term scores, every chunk's ids and version by row, the
    per-row terms, the chunk vectors and payloads (memory-mapped), and chunk keys for the vector store."""

    retriever: Any
    rows: pa.Table  # the payloads, memory-mapped
    chunk_ids: list[str]
    row_of: dict[str, int]
    document_ids: list[str]
    doc_codes: np.ndarray  # per corpus row: an integer per document, so filters compare ints, not strings
    code_of: dict[str, int]
    versions: list[str]
    keys: np.ndarray  # chunk keys (stores.chunk_key) sorted, and the rows they belong to
    key_rows: np.ndarray
    vectors: np.ndarray | None  # [rows, dim] float32, memory-mapped; None for an index written without
    idf: np.ndarray  # per vocabulary term, for choosing feedback terms
    terms: RowTerms  # per row: its terms, their counts and BM25 scores
    stamp: tuple[int, int]  # (inode, mtime) of the rows file it was loaded from
    _inverse_norms: np.ndarray | None = field(default=None, repr=False)

    def inverse_norms(self) -> np.ndarray:
        """1 / the length of each row's vector (the embedder's are unit length; a remote one's may not be),
        computed on first use: exact dense search scores by cosine, as the vector store does."""
        if self._inverse_norms is None:
            assert self.vectors is not None
            norms = np.sqrt(np.einsum("ij,ij->i", self.vectors, self.vectors))
            self._inverse_norms = (1.0 / np.maximum(norms, 1e-12)).astype(np.float32)
        return self._inverse_norms

    @classmethod
    def of(cls, retriever: Any, rows: pa.Table, terms: RowTerms, stamp: tuple[int, int]) -> Index:
        chunk_ids = rows.column("chunk_id").to_pylist()
        document_ids = rows.column("document_id").to_pylist()
        code_of: dict[str, int] = {}
        doc_codes = np.fromiter(
            (code_of.setdefault(d, len(code_of)) for d in document_ids),
            dtype=np.int32,
            count=len(document_ids),
        )
        keys = np.fromiter((chunk_key(c) for c in chunk_ids), dtype=np.int64, count=len(chunk_ids))
        order = np.argsort(keys, kind="stable")
        vectors = None
        if "vector" in rows.column_names:
            column = rows.column("vector").combine_chunks()
            dim = column.type.list_size
            vectors = column.values.to_numpy(zero_copy_only=False).reshape(len(chunk_ids), dim)
        indptr = retriever.scores["indptr"]
        df = np.diff(indptr).astype(np.float64)
        n = max(len(chunk_ids), 1)
        return cls(
            retriever,
            rows,
            chunk_ids,
            {c: i for i, c in enumerate(chunk_ids)},
            document_ids,
            doc_codes,
            code_of,
            rows.column("version").to_pylist(),
            keys[order],
            order,
            vectors,
            np.log(1.0 + (n - df + 0.5) / (df + 0.5)),
            terms,
            stamp,
        )

    # -- scoring

    def query_weights(self, query: str) -> dict[int, float]:
        """Vocabulary term id → weight (its count in the query) for the query's known terms."""
        vocab = self.retriever.vocab_dict
        tokens = query_tokens(query, QUERY_STOPWORDS) or query_tokens(query, "en")
        # Words the corpus never saw cannot score; a query of only those (or only stopwords) matches nothing.
        return {vocab[t]: float(n) for t, n in Counter(tokens).items() if t in vocab}

    def scores(self, weights: dict[int, float]) -> np.ndarray:
        """BM25 score of every row for weighted query terms (bm25s's precomputed term-row scores)."""
        data, indices, indptr = (self.retriever.scores[k] for k in ("data", "indices", "indptr"))
        if not weights:
            return np.zeros(len(self.chunk_ids), dtype=np.float32)
        # One bincount over every posting of the query's terms: half the time of a fancy-index addition per
        # term (145k postings per Cranfield query at 100k chunks: 0.5 against 1.0 ms).
        spans = [(int(indptr[t]), int(indptr[t + 1]), np.float32(w)) for t, w in weights.items()]
        rows = np.concatenate([indices[start:end] for start, end, _ in spans])
        values = np.concatenate([w * data[start:end] for start, end, w in spans])
        scores = np.bincount(rows, weights=values, minlength=len(self.chunk_ids)).astype(np.float32)
        nonoccurrence = getattr(self.retriever, "nonoccurrence_array", None)
        if nonoccurrence is not None:  # BM25L / BM25+ give absent terms a score too
            scores += sum(w * float(nonoccurrence[t]) for t, w in weights.items())
        return scores

    def scores_at(self, weights: dict[int, float], rows: np.ndarray) -> np.ndarray:
        """BM25 scores of the given rows only, from each row's own terms."""
        where, owner = self.terms.entries(rows)
        weight_of = np.zeros(len(self.idf), dtype=np.float32)  # per vocabulary term
        weight_of[np.fromiter(weights, dtype=np.int64, count=len(weights))] = np.fromiter(
            weights.values(), dtype=np.float32, count=len(weights)
        )
        contribution = weight_of[self.terms.terms[where]] * self.terms.scores[where]
        out = np.bincount(owner, weights=contribution, minlength=len(rows)).astype(np.float32)
        nonoccurrence = getattr(self.retriever, "nonoccurrence_array", None)
        if nonoccurrence is not None:
            out += sum(w * float(nonoccurrence[t]) for t, w in weights.items())
        return out

    def mask(self, document_ids: set[str]) -> np.ndarray:
        """Per row: does its document pass the filter."""
        wanted = np.zeros(len(self.code_of) + 1, dtype=bool)
        codes = [self.code_of[d] for d in document_ids if d in self.code_of]
        wanted[codes] = True
        return wanted[self.doc_codes]

    def top(
        self, weights: dict[int, float], k: int, document_ids: set[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best k rows with a positive score, best first, and their scores."""
        if not weights or (document_ids is not None and not document_ids):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = self.scores(weights)
        if document_ids is not None:
            scores = np.where(self.mask(document_ids), scores, 0.0).astype(np.float32)
        top = top_rows(scores, k)
        top = top[scores[top] > 0]
        return top, scores[top]

    def expansion(self, rows: list[int], exclude: dict[int, float], count: int) -> dict[int, float]:
        """Pseudo-relevance feedback terms: the feedback rows' terms ranked by count × idf, best first (ties
        in order of first appearance), weighted by that relative to the best one (1.0), leaving out the
        query's own terms."""
        if count <= 0 or not rows:
            return {}
        where, _owner = self.terms.entries(np.asarray(rows, dtype=np.int64))
        terms, first, inverse = np.unique(self.terms.terms[where], return_index=True, return_inverse=True)
        weight = self.idf[terms] * np.bincount(inverse, weights=self.terms.counts[where])
        excluded = np.zeros(len(self.idf), dtype=bool)
        excluded[np.fromiter(exclude, dtype=np.int64, count=len(exclude))] = True
        keep = ~excluded[terms]
        terms, first, weight = terms[keep], first[keep], weight[keep]
        best = np.lexsort((first, -weight))[:count]
        if not len(best) or weight[best[0]] <= 0:
            return {}
        top = float(weight[best[0]])
        return {int(terms[i]): float(weight[i]) / top for i in best.tolist()}

    # -- rows

    def rows_of_keys(self, keys: np.ndarray) -> np.ndarray:
        """The row of each chunk key (stores.chunk_key), -1 for a key this index does not hold."""
        keys = np.asarray(keys, dtype=np.int64)
        if not len(self.keys):
            return np.full(len(keys), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[at] == keys, self.key_rows[at], -1).astype(np.int64)

    def hit(self, row: int, score: float) -> Hit:
        return Hit(self.chunk_ids[row], self.document_ids[row], self.versions[row], score)

    def payloads_of(self, chunk_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The payloads of those of these chunks this index holds, by chunk id."""
        rows = [self.row_of[c] for c in chunk_ids if c in self.row_of]
        return {p["chunk_id"]: p for p in self.payloads(rows)} if rows else {}

    def payloads(self, rows: list[int]) -> list[dict[str, Any]]:
        # Item by item: `take` on the memory-mapped table cost more than a few scalar reads.
        columns = [(name, self.rows.column(name)) for name in PAYLOAD]
        return [{name: column[r].as_py() for name, column in columns} for r in rows]


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """The rows of the k highest scores, best first (ties by row). A full partition of 100k scores cost
    1.4 ms; instead, the k-th best of ~4k block maxima is a floor that at least k scores reach (each block
    maximum is a score of its own row), so only the few scores above it are sorted."""
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if n > 16 * k:
        maxima = np.maximum.reduceat(scores, np.arange(0, n, n // (4 * k)))
        floor = np.partition(maxima, len(maxima) - k)[len(maxima) - k]
        rows = np.flatnonzero(scores >= floor)
    else:
        rows = np.arange(n)
    return rows[np.argsort(-scores[rows], kind="stable")[:k]].astype(np.int64)


def tokenize(texts: list[str], stopwords: str = "en") -> list[list[str]]:
    """Lower-cased words without English stopwords, Snowball-stemmed: the same for documents and queries."""
    import bm25s

    return bm25s.tokenize(
        texts, stopwords=stopwords, stemmer=_stemmer(), return_ids=False, show_progress=False
    )


_WORDS = re.compile(r"(?u)\b\w\w+\b")  # bm25s's token pattern
_NO_WORDS = "\x00"  # never a query token: not a word under _WORDS
_STOPWORDS: dict[str, frozenset[str]] = {}


def query_tokens(text: str, stopwords: str) -> list[str]:
    """`tokenize` for one text, without bm25s's per-call vocabulary building (a fifth of the time): lower
    case, bm25s's word pattern, stopwords dropped, then Snowball stems. The tests check it agrees."""
    words = _STOPWORDS.get(stopwords)
    if words is None:
        import bm25s.stopwords

        words = frozenset(getattr(bm25s.stopwords, f"STOPWORDS_{stopwords.upper()}"))
        _STOPWORDS[stopwords] = words
    return _stemmer().stemWords([w for w in _WORDS.findall(text.lower()) if w not in words])


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
        self._indexes: dict[str, Index | None] = {}
        self._lock = threading.Lock()

    def _dir(self, collection_id: str) -> Path:
        return self.root / collection_id

    def rebuild(self, collection_id: str, rows: list[dict[str, Any]]) -> None:
        """Index `rows` (the chunk payload fields of `stores.PAYLOAD`, and `vector` when every row has one)
        and persist the index."""
        import bm25s

        if not rows:
            self.drop(collection_id)
            return
        # The title is part of what a chunk is about.
        tokens = tokenize([f"{r['title']}\n{r['text']}" for r in rows])
        if not any(tokens):
            # Every chunk was stopwords only, and bm25s cannot index an empty vocabulary. The index must still
            # exist (it holds the chunks' payloads), so it gets one token that no query can produce (queries
            # keep only \w\w+ words): the keyword search finds nothing, dense search works as usual.
            tokens = [[_NO_WORDS], *tokens[1:]]
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        terms = RowTerms.build(tokens, retriever)
        columns: dict[str, Any] = {name: [r[name] for r in rows] for name in PAYLOAD}
        fields = list(_FIELDS)
        if all(r.get("vector") is not None for r in rows):
            matrix = np.stack([np.asarray(r["vector"], dtype=np.float32) for r in rows])
            vector_type = pa.list_(pa.float32(), matrix.shape[1])
            columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), matrix.shape[1])
            fields.append(("vector", vector_type))
        schema = pa.schema(fields)
        table = pa.Table.from_pydict(columns, schema=schema)
        tmp = self.root / f".{collection_id}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        retriever.save(str(tmp))
        terms.save(tmp)
        with pa.OSFile(str(tmp / _ROWS), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
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
            self._indexes[collection_id] = Index.of(
                retriever, self._read(path), terms, _stamp(path) or (0, 0)
            )

    @staticmethod
    def _read(path: Path) -> pa.Table:
        return pa.ipc.open_file(pa.memory_map(str(path))).read_all()

    def current(self, collection_id: str) -> tuple[bool, Index | None]:
        """(fresh, index): the index in memory, and whether it matches the file on disk (a stat, no load)."""
        stamp = _stamp(self._dir(collection_id) / _ROWS)
        cached = self._indexes.get(collection_id)
        fresh = collection_id in self._indexes and (
            stamp is None or (cached is not None and cached.stamp == stamp)
        )
        return fresh, cached

    def load(self, collection_id: str) -> Index | None:
        """The collection's index, loaded again when another process rebuilt it (blocking on a reload)."""
        fresh, cached = self.current(collection_id)
        if fresh:
            # Unchanged on disk (or mid-swap by another process: keep what we have).
            return cached
        import bm25s

        path = self._dir(collection_id) / _ROWS
        stamp = _stamp(path)
        index = None
        if stamp is not None:
            try:
                folder = self._dir(collection_id)
                retriever = bm25s.BM25.load(str(folder))
                rows = self._read(path)
                terms = RowTerms.load(folder)
                if terms is None:  # written by an older Hearth: tokenize once more, in memory
                    texts = [
                        f"{title}\n{text}"
                        for title, text in zip(
                            rows.column("title").to_pylist(), rows.column("text").to_pylist(), strict=True
                        )
                    ]
                    terms = RowTerms.build(tokenize(texts), retriever)
                index = Index.of(retriever, rows, terms, stamp)
            except (FileNotFoundError, OSError, pa.ArrowInvalid, ValueError):
                return cached  # swapped away while we read it; the next query loads the new one
        with self._lock:
            self._indexes[collection_id] = index
        return index

    _load = load

    def search(
        self, collection_id: str, query: str, k: int, document_ids: set[str] | None = None
    ) -> list[Hit]:
        index = self.load(collection_id)
        if index is None:
            return []
        rows, scores = index.top(index.query_weights(query), k, document_ids)
        return [index.hit(r, float(s)) for r, s in zip(rows.tolist(), scores.tolist(), strict=True)]

    def payloads(self, collection_id: str, chunk_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored payloads (`stores.PAYLOAD` fields) of those chunks this index holds."""
        index = self.load(collection_id)
        return index.payloads_of(chunk_ids) if index is not None else {}

    def drop(self, collection_id: str) -> None:
        with self._lock:
            self._indexes[collection_id] = None
            shutil.rmtree(self._dir(collection_id), ignore_errors=True)

    def changed(self, collection_id: str, index: Index) -> bool:
        """Whether the index on disk is no longer the one `index` was loaded from (a stat, no load)."""
        return _stamp(self._dir(collection_id) / _ROWS) != index.stamp

    def exists(self, collection_id: str) -> bool:
        return (self._dir(collection_id) / _ROWS).exists()
