"""Search: dense, sparse or hybrid candidates of a visible collection, the active-version check, reranking.

The search stage (`search_stage`) is the measured hot path: it runs over keyword-index rows in one worker
thread (`retrieval.search_rows`), and by chunk ids only when the index lacks a dense candidate."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from dataclasses import dataclass
from typing import Any, Required, TypedDict

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.gateway.service import Caller, Gateway
from hearth.platform.db import Database
from hearth.platform.errors import bad_request
from hearth.rag import fusion, rerank, retrieval
from hearth.rag.active import active, activity, sqlite_active, sqlite_file
from hearth.rag.config import RagConfig
from hearth.rag.indexes import Indexes
from hearth.rag.keyword import Index
from hearth.rag.models import Document
from hearth.rag.repository import CollectionRepository, visible_collection_id
from hearth.rag.schemas import Mode, RagSource
from hearth.rag.stores import Hit

_DOC_FIELDS = {"document_id", "source", "title", "content_type"}


@dataclass
class SearchResult:
    sources: list[RagSource]
    mode: Mode
    collection_id: str
    latency_ms: dict[str, float]
    top_k: int  # what was asked, for the query's event
    top_n: int


class Question(TypedDict, total=False):
    """A search's keyword arguments (`Search.search`), which the answer paths take as they are."""

    user_id: Required[str]
    collection: Required[str]
    query: Required[str]
    top_k: int
    top_n: int
    mode: str | None
    filters: dict | None
    rerank: bool
    caller: Caller | None


@dataclass(frozen=True)
class _Stage:
    """One search-stage query: what `search_stage` hands to either of its paths."""

    collection_id: str
    query: str
    vector: np.ndarray | None
    mode: str
    top_k: int
    depth: int  # candidates per retriever
    allowed: set[str] | None  # documents a filter lets through; None: all
    keep: int | None = None  # with the built-in rerank: how many of the reranked top_k to return


class Search:
    def __init__(self, *, db: Database, gateway: Gateway, indexes: Indexes, config: RagConfig) -> None:
        self.db = db
        self.gateway = gateway
        self.indexes = indexes
        self.store = indexes.store
        self.keywords = indexes.keywords
        self.config = config

    async def retrieve(
        self,
        *,
        user_id: str,
        collection: str,
        query: str,
        top_k: int = 10,
        top_n: int = 3,
        mode: str | None = None,
        filters: dict | None = None,
    ) -> list[RagSource]:
        """The top_n reranked chunks of a visible collection for `query` (404 for a missing/foreign one)."""
        result = await self.search(
            user_id=user_id,
            collection=collection,
            query=query,
            top_k=top_k,
            top_n=top_n,
            mode=mode,
            filters=filters,
        )
        return result.sources

    async def search(
        self,
        *,
        user_id: str,
        collection: str,
        query: str,
        top_k: int = 10,
        top_n: int = 3,
        mode: str | None = None,
        filters: dict | None = None,
        rerank: bool = True,
        caller: Caller | None = None,
    ) -> SearchResult:
        """Retrieve top_k candidates (dense, sparse or hybrid), rerank them and keep top_n.

        With no reranking model configured, `rerank` is the built-in reranker (`rag/rerank.py`): it
        re-scores at least `config.rerank_depth` fused candidates inside the search stage from their stored
        vectors, so a small top_k does not cut what it can bring up, and nothing is embedded but the query.
        With a model behind the `reranker` alias (a cross-encoder, a remote `/v1/rerank`), the top_k
        candidates' texts are sent to it."""
        mode = mode or self.config.default_mode
        if mode not in ("dense", "sparse", "hybrid"):
            raise bad_request(f"unknown mode {mode!r}: use dense, sparse or hybrid", param="mode")
        if not query.strip():
            raise bad_request("the query is empty", param="query")
        caller = caller or Caller(user_id=user_id)
        latency: dict[str, float] = {"embed": 0.0, "search": 0.0, "rerank": 0.0}
        started = time.perf_counter()
        allowed = None
        if filters:
            async with self.db.transaction() as session:
                collection_id = (await CollectionRepository(session, user_id=user_id).find(collection)).id
                allowed = await self._filtered(session, collection_id, filters)
        else:  # the common case, without an ORM session (`visible_collection_id`)
            collection_id = await visible_collection_id(self.db, user_id=user_id, ref=collection)
        vector = None
        if mode != "sparse":
            t = time.perf_counter()
            vector = np.asarray((await self.gateway.embed(self.config.embedder, [query], caller)).vectors[0])
            latency["embed"] = ms(t)
        t = time.perf_counter()
        builtin = rerank and self.config.builtin_rerank
        sources = await self.search_stage(
            collection_id,
            query,
            vector,
            mode=mode,
            top_k=max(top_k, self.config.rerank_depth) if builtin else top_k,
            allowed=allowed,
            keep=top_n if builtin else None,
            timings=latency,
        )
        latency["search"] = round(ms(t) - latency["rerank"], 3)
        if rerank and not builtin and sources:
            t = time.perf_counter()
            result = await self.gateway.rerank(self.config.reranker, query, [s.text for s in sources], caller)
            for source, score in zip(sources, result.scores, strict=True):
                source.rerank_score = float(score)
            sources.sort(key=lambda s: s.rerank_score or 0.0, reverse=True)
            latency["rerank"] = ms(t)
        latency["total"] = ms(started)
        return SearchResult(sources[:top_n], mode, collection_id, latency, top_k, top_n)  # type: ignore[arg-type]

    async def search_stage(
        self,
        collection_id: str,
        query: str,
        vector: np.ndarray | None,
        *,
        mode: str,
        top_k: int,
        allowed: set[str] | None = None,
        keep: int | None = None,
        timings: dict[str, float] | None = None,
    ) -> list[RagSource]:
        """Index lookups, fusion, pseudo-relevance feedback (hybrid), the active-version check and the
        payloads: the measured search stage. It runs over keyword-index rows in one worker thread
        (`retrieval.search_rows`), and by chunk ids only when the index lacks a dense candidate.

        With `keep`, the top_k candidates go through the built-in reranker (`rag/rerank.py`) in the same
        thread and the best `keep` are returned; its time is added to `timings["rerank"]`."""
        depth = max(self.config.candidates, top_k)
        fresh, index = self.keywords.current(collection_id)
        if not fresh:
            # First query, or another process wrote to the collection and rebuilt the index: (re)load it off
            # the event loop, and have the vector store open the collection again to see those writes.
            self.store.refresh(collection_id)
            index = await asyncio.to_thread(self.keywords.load, collection_id)
        stage = _Stage(collection_id, query, vector, mode, top_k, depth, allowed, keep)
        spent: dict[str, float] = {"rerank": 0.0}
        if index is not None:
            sources = await asyncio.to_thread(
                self._search_rows, stage, index, asyncio.get_running_loop(), spent
            )
            if sources is None:
                sources = await self._search_hits(stage, index, spent)
        else:
            sources = await self._search_hits(stage, index, spent)
        if timings is not None:
            timings["rerank"] = timings.get("rerank", 0.0) + spent["rerank"]
        return sources

    def _search_rows(
        self, stage: _Stage, index: Index, loop: asyncio.AbstractEventLoop, spent: dict[str, float]
    ) -> list[RagSource] | None:
        """The search stage over the keyword index's rows (blocking; None: a dense candidate it lacks)."""
        collection_id, vector = stage.collection_id, stage.vector
        dense = (
            functools.partial(self.store.search_keys, collection_id, vector, stage.depth, stage.allowed)
            if vector is not None
            else None
        )
        path = sqlite_file(self.db.url)

        def check(ids: set[str]) -> tuple[dict[str, str | None], dict[str, str]]:
            if path is not None:  # on this thread's own read-only connection
                return activity(sqlite_active(path, list(ids)), collection_id)
            return asyncio.run_coroutine_threadsafe(active(self.db, collection_id, ids), loop).result()

        # Exact dense search over the index's own vectors where the vector store would brute-force anyway.
        exact = index.vectors is not None and len(index.chunk_ids) <= self.config.exact_rows
        found = retrieval.search_rows(
            index,
            dense,
            index.query_weights(stage.query) if stage.mode != "dense" else {},
            vector,
            mode=stage.mode,
            top_k=stage.top_k,
            depth=stage.depth,
            allowed=stage.allowed,
            tuning=retrieval.Tuning(
                self.config.fusion,
                self.config.sparse_weight,
                self.config.feedback,
                self.config.feedback_terms,
            ),
            check=check,
            exact=exact,
            stale=functools.partial(self.keywords.changed, collection_id, index),
        )
        if found is None:
            return None
        rows, scores, reranked = found.rows, found.scores, None
        if stage.keep is not None and rows:
            t = time.perf_counter()
            vectors = index.vectors[rows] if index.vectors is not None else None
            new = rerank.rerank(np.asarray(scores), vectors, [index.document_ids[r] for r in rows])
            order = np.argsort(-new, kind="stable")[: stage.keep].tolist()
            rows, scores, reranked = [rows[i] for i in order], [scores[i] for i in order], new[order].tolist()
            spent["rerank"] = ms(t)
        payloads = index.payloads(rows) if rows else []
        sources = [_source(p, score, found.sources) for p, score in zip(payloads, scores, strict=True)]
        for source, value in zip(sources, reranked or [], strict=False):
            source.rerank_score = round(value, 6)
        return sources

    async def _search_hits(
        self, stage: _Stage, index: Index | None, spent: dict[str, float]
    ) -> list[RagSource]:
        """The search stage by chunk ids, for when the keyword index lacks a dense candidate: another process
        wrote chunks and is rebuilding it. Dense candidates are named by the vector store; no feedback."""
        collection_id, query, vector, mode = stage.collection_id, stage.query, stage.vector, stage.mode
        top_k, depth, allowed = stage.top_k, stage.depth, stage.allowed
        dense: list[Hit] = []
        if vector is not None and mode != "sparse":
            dense = await asyncio.to_thread(self.store.search, collection_id, vector, depth, allowed)
        sparse: list[Hit] = []
        if index is not None and mode != "dense":
            rows, scores = index.top(index.query_weights(query), depth, allowed)
            sparse = [index.hit(r, s) for r, s in zip(rows.tolist(), scores.tolist(), strict=True)]
        if mode == "dense":
            ranked = dense
        elif mode == "sparse":
            ranked = sparse
        else:
            ranked = fusion.fuse(
                dense, sparse, method=self.config.fusion, sparse_weight=self.config.sparse_weight
            )
        current, names = await active(self.db, collection_id, {h.document_id for h in ranked})
        hits = [h for h in ranked if current.get(h.document_id) == h.version][:top_k]
        reranked: list[float] = []
        if stage.keep is not None and hits:
            # No stored vectors on this path (the index lacks some candidates): one chunk per document
            # first, without score regularisation.
            t = time.perf_counter()
            new = rerank.rerank(np.asarray([h.score for h in hits]), None, [h.document_id for h in hits])
            order = np.argsort(-new, kind="stable")[: stage.keep].tolist()
            hits, reranked = [hits[i] for i in order], new[order].tolist()
            spent["rerank"] = ms(t)
        payloads = index.payloads_of([h.chunk_id for h in hits]) if index is not None else {}
        missing = [h.chunk_id for h in hits if h.chunk_id not in payloads]
        if missing:
            payloads.update(await asyncio.to_thread(self.store.fetch, collection_id, missing))
        sources = []
        for hit, value in zip(hits, reranked or [None] * len(hits), strict=True):
            if hit.chunk_id in payloads:
                sources.append(_source(payloads[hit.chunk_id], hit.score, names))
                sources[-1].rerank_score = round(value, 6) if value is not None else None
        return sources

    async def _filtered(self, session: AsyncSession, collection_id: str, filters: dict[str, Any]) -> set[str]:
        """Ids of the collection's documents whose fields or metadata match every filter (a list: any of)."""
        for key, value in filters.items():
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(i, str | int | float | bool) for i in items) or not items:
                raise bad_request(
                    f"filter {key!r}: use a string, number or boolean, or a non-empty list of them",
                    param=f"filters.{key}",
                )
        rows = (
            await session.execute(
                select(
                    Document.id, Document.source, Document.title, Document.content_type, Document.meta
                ).where(Document.collection_id == collection_id, Document.active_version.is_not(None))
            )
        ).all()
        matched = set()
        for row in rows:
            fields = {
                "document_id": row.id,
                "source": row.source,
                "title": row.title,
                "content_type": row.content_type,
            }
            fields.update({k: v for k, v in (row.meta or {}).items() if k not in _DOC_FIELDS})
            if all(_matches(fields.get(k), v) for k, v in filters.items()):
                matched.add(row.id)
        return matched


def _source(payload: dict[str, Any], score: float, sources: dict[str, str]) -> RagSource:
    """A retrieved chunk as returned: its payload, its score, and its document's source in the metadata."""
    metadata = json.loads(payload["metadata"] or "{}")
    metadata["source"] = sources[payload["document_id"]]
    metadata["position"] = payload["position"]
    if payload["page"] >= 0:
        metadata["page"] = payload["page"]
    return RagSource(
        chunk_id=payload["chunk_id"],
        document_id=payload["document_id"],
        title=payload["title"],
        text=payload["text"],
        score=round(score, 6),
        metadata=metadata,
    )


def _matches(actual: Any, wanted: Any) -> bool:
    wanted_values = wanted if isinstance(wanted, list) else [wanted]
    actual_values = actual if isinstance(actual, list) else [actual]
    return any(a == w for a in actual_values for w in wanted_values if a is not None)


def ms(started: float) -> float:
    """Milliseconds since `started` (a perf_counter reading), to the microsecond."""
    return round((time.perf_counter() - started) * 1000, 3)
