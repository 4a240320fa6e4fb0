"""LanceDB embedded in the data directory: the default vector store (see hearth.rag.stores)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hearth.rag.stores import PAYLOAD, ChunkRecord, Hit, chunk_key

_HEX = re.compile(r"^[0-9a-f]{32}$")
# One HNSW graph per this many rows. A query probes most IVF partitions (LanceDB's default nprobes is 20), and
# each probe is an HNSW search: at 100k rows of MiniLM vectors, 24 partitions of ~4k rows cost 13.6 ms p50 per
# query against 6.9 ms for one graph, at the same recall@10 (0.98; docs/rag.md). A larger graph takes longer
# to build (54 s against 24 s at 100k on 2 cores), which happens once the ingestion queue is empty.
_ROWS_PER_PARTITION = 500_000


def _lookup(keys: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """keys[offsets], with -1 for an offset past the end."""
    found = np.full(len(offsets), -1, dtype=np.int64)
    inside = offsets < len(keys)
    found[inside] = keys[offsets[inside]]
    return found


def _ids(values: Iterable[str]) -> str:
    # Ids are our own uuid4 hex strings; checking them keeps the SQL-like filters injection-free.
    checked = []
    for value in values:
        if not _HEX.match(value):
            raise ValueError(f"not a Hearth id: {value!r}")
        checked.append(f"'{value}'")
    return ", ".join(checked)


class LanceStore:
    """LanceDB in the data directory. Brute force below `ann_threshold` rows; an IVF_HNSW_SQ index above
    (rows added after the last index build are searched exhaustively and merged by LanceDB)."""

    def __init__(self, path: Path, *, ann_threshold: int = 20_000) -> None:
        import lancedb

        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = lancedb.connect(str(path))
        self.ann_threshold = ann_threshold
        self._tables: dict[str, Any] = {}
        self._lock = threading.Lock()
        # Queries go to the table's Lance dataset (pylance, LanceDB's own engine) in a worker thread: one
        # blocking call into Rust. LanceDB's async API crossed into its runtime several times per query and
        # measured 5.3 against 4.9 ms p50 (8.8 against 6.9 under load) at 100k rows (docs/rag.md).
        self._datasets: dict[str, tuple[Any, bool]] = {}  # dataset, has the `key` column
        # Chunk keys by row offset, per collection and fragment. A query reads back only row addresses
        # (fragment id << 32 | offset, known without reading the data files) and maps them here: taking the
        # `key` column of 100 rows cost 1.4 ms of a 3.4 ms query at 100k rows (p95 3 ms). A fragment's rows
        # never move (Lance marks deletions beside it and compaction writes new fragments under new ids), so
        # an entry stays true while its fragment exists.
        self._fragment_keys: dict[str, dict[int, np.ndarray]] = {}
        self._generation = 0  # bumped by every write, so a handle opened during a write is not kept

    @staticmethod
    def _name(collection_id: str) -> str:
        return f"c_{collection_id}"

    def _table(self, collection_id: str) -> Any | None:
        table = self._tables.get(collection_id)
        if table is None:
            try:
                table = self.db.open_table(self._name(collection_id))
            except (FileNotFoundError, ValueError):
                return None
            self._tables[collection_id] = table
        return table

    def _changed(self, collection_id: str) -> None:
        # A dataset handle sees the table as of its opening: the next query opens it again.
        self._generation += 1
        self._datasets.pop(collection_id, None)

    def refresh(self, collection_id: str) -> None:
        """Another process wrote to the collection: open it again on its next use. (A LanceDB table or Lance
        dataset handle keeps reading the version it was opened at.)"""
        self._tables.pop(collection_id, None)
        self._changed(collection_id)

    def close(self) -> None:
        """Forget the open tables and datasets (Lance holds no server connection to close)."""
        self._tables.clear()

    def _keys_at(self, collection_id: str, dataset: Any, addresses: np.ndarray) -> np.ndarray:
        """The chunk key at each row address (-1 where the fragment no longer holds a row there)."""
        cache = self._fragment_keys.setdefault(collection_id, {})
        fragments = addresses >> 32
        offsets = (addresses & 0xFFFFFFFF).astype(np.int64)
        keys = np.full(len(addresses), -1, dtype=np.int64)
        for fragment_id in np.unique(fragments).tolist():
            at = fragments == fragment_id
            keys[at] = _lookup(self._fragment(cache, dataset, fragment_id), offsets[at])
        return keys

    @staticmethod
    def _fragment(cache: dict[int, np.ndarray], dataset: Any, fragment_id: int) -> np.ndarray:
        keys = cache.get(fragment_id)
        if keys is None:
            fragment = dataset.get_fragment(fragment_id)
            if fragment is None:
                return np.empty(0, dtype=np.int64)
            rows = fragment.to_table(columns=["key"], with_row_address=True)
            offsets = (rows.column("_rowaddr").to_numpy() & 0xFFFFFFFF).astype(np.int64)
            keys = np.full(int(offsets.max()) + 1 if len(offsets) else 0, -1, dtype=np.int64)
            keys[offsets] = rows.column("key").to_numpy()
            cache[fragment_id] = keys
        return keys

    def _warm(self, collection_id: str) -> None:
        """Read the keys of every fragment now (after a compaction), not on the next query, and forget
        fragments that are gone."""
        found = self._dataset(collection_id)
        if found is None or not found[1]:
            return
        dataset = found[0]
        live = {f.fragment_id for f in dataset.get_fragments()}
        cache = self._fragment_keys.setdefault(collection_id, {})
        for fragment_id in [f for f in list(cache) if f not in live]:
            cache.pop(fragment_id, None)
        for fragment_id in live:
            self._fragment(cache, dataset, fragment_id)

    def add(self, collection_id: str, records: list[ChunkRecord]) -> None:
        if not records:
            return
        import pyarrow as pa

        dim = len(records[0].vector)
        data = pa.table(
            {
                "chunk_id": [r.chunk_id for r in records],
                "key": pa.array([chunk_key(r.chunk_id) for r in records], pa.int64()),
                "document_id": [r.document_id for r in records],
                "version": [r.version for r in records],
                "position": pa.array([r.position for r in records], pa.int32()),
                "page": pa.array([r.page for r in records], pa.int32()),
                "title": [r.title for r in records],
                "text": [r.text for r in records],
                "metadata": [r.metadata for r in records],
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.stack([r.vector for r in records]).astype(np.float32).ravel()), dim
                ),
            }
        )
        with self._lock:
            table = self._table(collection_id)
            if table is None:
                table = self.db.create_table(self._name(collection_id), data=data)
                self._tables[collection_id] = table
            else:
                if "key" not in table.schema.names:  # a table written before chunk keys existed
                    data = data.drop_columns(["key"])
                table.add(data)
            self._changed(collection_id)

    def optimize(self, collection_id: str) -> None:
        """Build (or refresh) the ANN index once the table is large enough; compact small fragments."""
        table = self._table(collection_id)
        if table is None:
            return
        rows = table.count_rows()
        indices = {i.name: i for i in table.list_indices()}
        has_vector = any("vector" in i.columns for i in indices.values())
        if rows >= self.ann_threshold:
            stale = True
            if has_vector:
                name = next(n for n, i in indices.items() if "vector" in i.columns)
                stats = table.index_stats(name)
                stale = stats is not None and stats.num_unindexed_rows > 0.2 * rows
            if stale:
                table.create_index(
                    metric="cosine",
                    vector_column_name="vector",
                    index_type="IVF_HNSW_SQ",
                    num_partitions=max(1, rows // _ROWS_PER_PARTITION),
                    replace=True,
                )
            if not any("chunk_id" in i.columns for i in indices.values()):
                table.create_scalar_index("chunk_id", replace=True)
        table.optimize()
        self._changed(collection_id)
        self._warm(collection_id)

    def _dataset(self, collection_id: str) -> tuple[Any, bool] | None:
        import lance

        found = self._datasets.get(collection_id)
        if found is None:
            generation = self._generation
            try:
                dataset = lance.dataset(str(self.path / f"{self._name(collection_id)}.lance"))
            except (FileNotFoundError, ValueError, OSError):
                return None
            found = (dataset, "key" in dataset.schema.names)
            if generation == self._generation:
                self._datasets[collection_id] = found
        return found

    def _nearest(
        self,
        collection_id: str,
        vector: np.ndarray,
        k: int,
        document_ids: set[str] | None,
        *,
        keys: bool,
    ) -> tuple[Any, Any] | None:
        """The dataset and the table of the k nearest rows by cosine distance (blocking: the service runs it
        in a worker thread). With `keys`: their row addresses, which `_keys_at` maps to chunk keys, or their
        chunk ids where the table has no keys; otherwise their chunk ids, document ids and versions."""
        import pyarrow as pa

        if document_ids is not None and not document_ids:
            return None
        found = self._dataset(collection_id)
        if found is None:
            return None
        dataset, has_key = found
        where = f"document_id IN ({_ids(document_ids)})" if document_ids is not None else None
        by_address = keys and has_key
        columns = [] if by_address else ["chunk_id"] if keys else ["chunk_id", "document_id", "version"]
        result = dataset.to_table(
            # `_distance` named explicitly: left implicit, Lance logs a deprecation warning on every query.
            columns=[*columns, "_distance"],
            with_row_address=by_address,
            nearest={
                "column": "vector",
                "q": pa.array(np.asarray(vector, dtype=np.float32)),  # numpy: Lance converts via float64
                "k": k,
                "metric": "cosine",
            },
            filter=where,
            prefilter=where is not None,
        )
        return dataset, result

    def search(
        self,
        collection_id: str,
        vector: np.ndarray,
        k: int,
        document_ids: set[str] | None = None,
    ) -> list[Hit]:
        """The k nearest chunks by cosine similarity, best first."""
        found = self._nearest(collection_id, vector, k, document_ids, keys=False)
        if found is None:
            return []
        result = found[1]
        return [
            Hit(c, d, v, s)
            for c, d, v, s in zip(
                result.column("chunk_id").to_pylist(),
                result.column("document_id").to_pylist(),
                result.column("version").to_pylist(),
                (1.0 - result.column("_distance").to_numpy()).tolist(),
                strict=True,
            )
        ]

    def search_keys(
        self,
        collection_id: str,
        vector: np.ndarray,
        k: int,
        document_ids: set[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`search` as chunk keys (`chunk_key`) and cosine similarities: the keyword index names the chunks.
        Reading three id strings per hit cost about as much as the ANN search; row addresses cost nothing."""
        found = self._nearest(collection_id, vector, k, document_ids, keys=True)
        if found is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        dataset, result = found
        scores = 1.0 - result.column("_distance").to_numpy()
        if "_rowaddr" in result.column_names:
            keys = self._keys_at(collection_id, dataset, result.column("_rowaddr").to_numpy())
        else:  # a table written before chunk keys existed
            keys = np.asarray([chunk_key(c) for c in result.column("chunk_id").to_pylist()], dtype=np.int64)
        return keys, scores.astype(np.float32)

    def fetch(self, collection_id: str, chunk_ids: list[str]) -> dict[str, dict[str, Any]]:
        table = self._table(collection_id)
        if table is None or not chunk_ids:
            return {}
        rows = (
            table.search()
            .where(f"chunk_id IN ({_ids(chunk_ids)})")
            .select(list(PAYLOAD))
            .limit(len(chunk_ids))
            .to_arrow()
            .to_pylist()
        )
        return {row["chunk_id"]: row for row in rows}

    def versions(self, collection_id: str) -> dict[tuple[str, str], int]:
        table = self._table(collection_id)
        if table is None:
            return {}
        data = self._scan(table, ["document_id", "version"])
        counts: dict[tuple[str, str], int] = {}
        for d, v in zip(
            data.column("document_id").to_pylist(), data.column("version").to_pylist(), strict=True
        ):
            counts[(d, v)] = counts.get((d, v), 0) + 1
        return counts

    def rows(self, collection_id: str) -> Iterator[dict[str, Any]]:
        """Every chunk's payload fields and its `vector` (a numpy row)."""
        table = self._table(collection_id)
        if table is None:
            return
        data = self._scan(table, [*PAYLOAD, "vector"])
        column = data.column("vector").combine_chunks()
        vectors = column.values.to_numpy(zero_copy_only=False).reshape(len(data), column.type.list_size)
        for row, vector in zip(data.drop_columns(["vector"]).to_pylist(), vectors, strict=True):
            row["vector"] = vector
            yield row

    @staticmethod
    def _scan(table: Any, columns: list[str]) -> Any:
        """Some columns of every row (a plain scan; no vectors read unless asked for)."""
        rows = table.count_rows()
        if not rows:
            return table.search().select(columns).limit(1).to_arrow()
        return table.search().select(columns).limit(rows).to_arrow()

    def delete_version(self, collection_id: str, document_id: str, version: str) -> None:
        table = self._table(collection_id)
        if table is not None:
            table.delete(f"document_id = {_ids([document_id])} AND version = {_ids([version])}")
            self._changed(collection_id)

    def delete_document(self, collection_id: str, document_id: str) -> None:
        table = self._table(collection_id)
        if table is not None:
            table.delete(f"document_id = {_ids([document_id])}")
            self._changed(collection_id)

    def drop(self, collection_id: str) -> None:
        with self._lock:
            self._tables.pop(collection_id, None)
            self._fragment_keys.pop(collection_id, None)
            self._changed(collection_id)
            if self._name(collection_id) in self._table_names():
                self.db.drop_table(self._name(collection_id))

    def _table_names(self) -> list[str]:
        result = self.db.list_tables()
        names = getattr(result, "tables", result)
        return list(names)

    def collections(self) -> list[str]:
        return [n[2:] for n in self._table_names() if n.startswith("c_")]
