"""Retrieval internals, on hand-made vectors so every expectation can be worked out by hand: pseudo-relevance
feedback moves the ranking the way it should, fusion by max-normalised scores, BM25 scoring shortcuts agree
with the full computation, LanceDB's ANN index (forced on a small table) returns the exact neighbours, and
filters stay exact on every path. Runs on SQLite with LanceDB and with Qdrant (local mode)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from hearth.auth.service import AuthService
from hearth.config import ModelsConfig
from hearth.events.bus import EventBus
from hearth.gateway.service import Gateway
from hearth.platform.db import Database, new_id, utcnow
from hearth.platform.migrate import upgrade
from hearth.rag import fusion, retrieval
from hearth.rag.active import sqlite_file
from hearth.rag.keyword import KeywordIndex, query_tokens, top_rows
from hearth.rag.lance import LanceStore
from hearth.rag.models import Document
from hearth.rag.qdrant import QdrantStore
from hearth.rag.service import RagConfig, RagService
from hearth.rag.stores import ChunkRecord, Hit, chunk_key

DIM = 8


def _unit(*parts: tuple[int, float]) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    for axis, value in parts:
        v[axis] = value
    return v / np.linalg.norm(v)


@pytest.fixture(params=["lancedb", "qdrant"])
async def rag(request, tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'hearth.db'}"
    upgrade(url)
    database = Database(url)
    store = LanceStore(tmp_path / "lance") if request.param == "lancedb" else QdrantStore(path=tmp_path / "q")
    service = RagService(
        db=database,
        bus=EventBus(database),
        gateway=Gateway(ModelsConfig.model_validate({})),  # never called here
        store=store,
        keywords=KeywordIndex(tmp_path / "bm25"),
        config=RagConfig(data_dir=tmp_path),
        users=AuthService(database),
    )
    await service.start(worker=False)
    service.user = (await AuthService(database).create_user(username="alice")).id  # type: ignore[attr-defined]
    yield service
    await service.stop()
    await database.close()


def _document(
    collection_id: str, source: str, doc: str, version: str, *, active: bool = True, meta=None
) -> Document:  # type: ignore[no-untyped-def]
    """A document row whose version `version` is active (indexed, one chunk), or still being embedded."""
    return Document(
        id=doc,
        collection_id=collection_id,
        source=source,
        title="",
        content_type="txt",
        content_hash=doc,
        meta=meta or {},
        status="indexed" if active else "embedding",
        job_id=version,
        active_version=version if active else None,
        chunk_count=1 if active else 0,
        updated_at=utcnow(),
    )


async def _collection(
    rag: RagService, chunks: dict[str, tuple[str, np.ndarray]]
) -> tuple[str, dict[str, str]]:
    """One document per chunk (source = its name), written straight to the indexes and made active."""
    collection = await rag.create_collection(user_id=rag.user, name="c")  # type: ignore[attr-defined]
    ids = {name: (new_id(), new_id()) for name in chunks}
    async with rag.db.transaction() as session:
        for name, (doc, version) in ids.items():
            session.add(_document(collection.id, name, doc, version, meta={"name": name}))
    records = [
        ChunkRecord(new_id(), ids[name][0], ids[name][1], 0, -1, "", text, "{}", vector)
        for name, (text, vector) in chunks.items()
    ]
    rag.store.add(collection.id, records)
    await rag.indexes.rebuild_keywords(collection.id)
    return collection.id, {name: doc for name, (doc, _) in ids.items()}


async def _ranking(rag: RagService, collection_id: str, query: str, vector: np.ndarray, **kw) -> list[str]:
    sources = await rag.search_stage(collection_id, query, vector, mode="hybrid", top_k=10, **kw)
    return [s.metadata["source"] for s in sources]


async def test_feedback_moves_the_query_towards_its_best_hit(rag):
    """`a` is clearly the best hit. `b` lies in a's direction, `c` on the other side of the query and a bit
    closer to it: plain search ranks c over b; with feedback from the best chunk the query moves towards a,
    and b overtakes c. The texts carry no query word, so BM25 adds nothing to either."""
    q = _unit((0, 1.0))
    collection_id, _ = await _collection(
        rag,
        {
            "a": ("supersonic intake design", _unit((0, 1.0), (1, 0.3))),
            "b": ("ramp geometry notes", _unit((0, 0.7), (1, 0.714))),
            "c": ("unrelated cooling notes", _unit((0, 0.75), (2, -0.66))),
            "d": ("nothing in common", _unit((3, 1.0))),
        },
    )
    rag.config.feedback = 0
    assert (await _ranking(rag, collection_id, "supersonic", q))[:3] == ["a", "c", "b"]
    rag.config.feedback = 1
    assert (await _ranking(rag, collection_id, "supersonic", q))[:3] == ["a", "b", "c"]


async def test_feedback_terms_reach_chunks_without_the_query_words(rag):
    """Dense ties `b` and `c` (same vector). Without feedback c wins on BM25 (it has a query word, b none);
    with feedback from `a`, b gains a's other words (panel, flutter) and overtakes c."""
    q = _unit((0, 1.0))
    same = _unit((0, 0.5), (1, 0.866))
    collection_id, _ = await _collection(
        rag,
        {
            "a": ("wing vibration panel flutter panel flutter", _unit((0, 1.0))),
            "b": ("panel flutter panel flutter", same),
            "c": ("vibration of a pump", same),
            "d": ("unrelated text about heat", _unit((3, 1.0))),
            "e": ("more unrelated text about heat", _unit((4, 1.0))),
        },
    )
    rag.config.feedback = 0
    assert (await _ranking(rag, collection_id, "wing vibration", q))[:3] == ["a", "c", "b"]
    rag.config.feedback = 1
    assert (await _ranking(rag, collection_id, "wing vibration", q))[:3] == ["a", "b", "c"]


async def test_filters_stay_exact_with_feedback(rag):
    q = _unit((0, 1.0))
    chunks = {f"n{i}": (f"flow note {i}", _unit((0, 1.0), (1 + i % 6, 0.1 * i))) for i in range(12)}
    collection_id, docs = await _collection(rag, chunks)
    allowed = {docs["n3"], docs["n7"], docs["n11"]}
    for feedback in (0, 3):
        rag.config.feedback = feedback
        got = await _ranking(rag, collection_id, "flow", q, allowed=allowed)
        assert sorted(got) == ["n11", "n3", "n7"]
        sparse = await rag.search_stage(collection_id, "flow", None, mode="sparse", top_k=10, allowed=allowed)
        assert sorted(s.metadata["source"] for s in sparse) == ["n11", "n3", "n7"]


def test_max_fusion_keeps_score_gaps():
    """Min-max stretches a flat dense ranking to [0, 1]; max-normalisation keeps it nearly flat, so BM25
    decides between near-equal dense scores."""
    dense = [Hit("a", "a", "v", 0.80), Hit("b", "b", "v", 0.79)]
    sparse = [Hit("b", "b", "v", 10.0), Hit("a", "a", "v", 9.0)]
    assert [h.chunk_id for h in fusion.fuse(dense, sparse, method="convex", sparse_weight=0.3)] == ["a", "b"]
    by_max = fusion.fuse(dense, sparse, method="max", sparse_weight=0.3)
    assert [h.chunk_id for h in by_max] == ["b", "a"]
    assert by_max[0].score == pytest.approx(0.7 * 0.79 / 0.80 + 0.3)


def test_fusion_over_rows_agrees_with_fusion_over_hits():
    """The row path's fusion gives the same ranking, scores and tie order as fusing `Hit` lists, and
    feedback's fusion of aligned scores the same scores."""
    rng = np.random.default_rng(3)
    for trial in range(30):
        dense_rows = rng.choice(400, size=int(rng.integers(0, 60)), replace=False)
        sparse_rows = rng.choice(400, size=int(rng.integers(0, 60)), replace=False)
        # Rounded scores, so ties happen; best first, as the retrievers return them.
        dense_scores = -np.sort(-np.round(rng.random(len(dense_rows)), 1)).astype(np.float32)
        sparse_scores = -np.sort(-np.round(rng.random(len(sparse_rows)) * 20, 0)).astype(np.float32)
        if trial == 0:
            dense_scores[:] = 0.5  # a flat ranking
        for method in fusion.METHODS:
            rows, scores = fusion.fuse_rows(
                (dense_rows, dense_scores), (sparse_rows, sparse_scores), method=method, sparse_weight=0.3
            )
            hits = fusion.fuse(
                [Hit(str(r), "d", "v", float(x)) for r, x in zip(dense_rows, dense_scores, strict=True)],
                [Hit(str(r), "d", "v", float(x)) for r, x in zip(sparse_rows, sparse_scores, strict=True)],
                method=method,
                sparse_weight=0.3,
            )
            assert [str(r) for r in rows.tolist()] == [h.chunk_id for h in hits]
            assert np.allclose(scores, [h.score for h in hits])
            # Feedback's re-fusion: every candidate has a dense score; a sparse score <= 0 is no BM25 hit.
            dense_all = np.round(rng.random(len(dense_rows)), 1)
            sparse_all = np.round(rng.random(len(dense_rows)) * 20, 0) * (rng.random(len(dense_rows)) > 0.4)
            by_dense = np.argsort(-dense_all, kind="stable")
            by_sparse = [i for i in np.argsort(-sparse_all, kind="stable").tolist() if sparse_all[i] > 0]
            expected = {
                h.chunk_id: h.score
                for h in fusion.fuse(
                    [Hit(str(i), "d", "v", float(dense_all[i])) for i in by_dense.tolist()],
                    [Hit(str(i), "d", "v", float(sparse_all[i])) for i in by_sparse],
                    method=method,
                    sparse_weight=0.3,
                )
            }
            aligned = fusion.fuse_scores(dense_all, sparse_all, method=method, sparse_weight=0.3)
            assert np.allclose(aligned, [expected[str(i)] for i in range(len(dense_rows))])


def test_keyword_scores_match_bm25s_and_filters_use_document_codes(tmp_path: Path):
    index = KeywordIndex(tmp_path)
    words = ["shock", "wave", "boundary", "layer", "flutter", "panel", "heat", "flux", "nozzle", "flow"]
    rng = np.random.default_rng(1)
    rows = [
        {
            "chunk_id": new_id(),
            "document_id": f"{i % 7:032x}",
            "version": "v" * 32,
            "position": i,
            "page": -1,
            "title": "",
            "text": " ".join(rng.choice(words, 12)),
            "metadata": "{}",
            "vector": rng.normal(size=4).astype(np.float32),
        }
        for i in range(60)
    ]
    index.rebuild("c", rows)
    loaded = KeywordIndex(tmp_path).load("c")  # from disk, as another process would
    assert loaded is not None and loaded.vectors is not None
    assert np.allclose(loaded.vectors[5], rows[5]["vector"])
    weights = loaded.query_weights("what is the shock wave in a nozzle flow")
    assert len(weights) == 4  # "what", "is", "the", "in", "a" dropped
    ids = [loaded.retriever.vocab_dict[t] for t in ("shock", "wave", "nozzl", "flow")]
    assert np.allclose(loaded.scores(weights), loaded.retriever.get_scores_from_ids(ids), atol=1e-5)
    picked = np.array([0, 9, 33, 59])
    assert np.allclose(loaded.scores_at(weights, picked), loaded.scores(weights)[picked])
    wanted = {f"{3:032x}", f"{5:032x}"}
    got, _ = loaded.top(weights, 100, wanted)
    assert len(got) and {rows[r]["document_id"] for r in got.tolist()} <= wanted
    assert loaded.rows_of_keys(np.array([chunk_key(rows[7]["chunk_id"]), 12345])).tolist() == [7, -1]
    # Feedback terms come from the feedback rows, never repeat the query's own terms, and rank by count x idf
    # (ties in order of first appearance), exactly as counting the rows' own tokens does.
    terms = loaded.expansion([0, 1], weights, 3)
    assert terms and not set(terms) & set(weights) and max(terms.values()) == 1.0
    counted: dict[int, float] = {}
    for r in (4, 0, 1):
        for token in query_tokens(f"\n{rows[r]['text']}", "en"):
            term = loaded.retriever.vocab_dict[token]
            if term not in weights:
                counted[term] = counted.get(term, 0.0) + float(loaded.idf[term])
    ranked = sorted(counted, key=lambda t: -counted[t])[:5]  # sorted() is stable: first appearance wins ties
    assert list(loaded.expansion([4, 0, 1], weights, 5)) == ranked
    # Equal weights keep the order in which the feedback rows use the terms.
    index.rebuild(
        "ties", [dict(rows[0], text=text) for text in ("panel flutter", "heat flux", "nozzle shock")]
    )
    ties = index.load("ties")
    assert ties is not None
    vocab = ties.retriever.vocab_dict
    assert list(ties.expansion([1, 0], {}, 3)) == [vocab["heat"], vocab["flux"], vocab["panel"]]
    # An index written before the per-row term files gets them rebuilt in memory, the same.
    for name in tmp_path.glob("c/row_*.npy"):
        name.unlink()
    older = KeywordIndex(tmp_path).load("c")
    assert older is not None and older.expansion([4, 0, 1], weights, 5) == loaded.expansion(
        [4, 0, 1], weights, 5
    )
    assert np.allclose(older.scores_at(weights, picked), loaded.scores(weights)[picked])


async def test_lance_ann_index_returns_the_exact_neighbours(tmp_path: Path):
    """A table forced over the ANN threshold gets an IVF_HNSW_SQ index; its answers match exact search, by
    chunk ids and by chunk keys (read from row addresses), before and after rows are added and deleted and
    the table is compacted, and under a filter."""
    store = LanceStore(tmp_path / "lance", ann_threshold=500)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = [
        ChunkRecord(new_id(), f"{i % 50:032x}", "f" * 32, i, -1, "", f"chunk {i}", "{}", v)
        for i, v in enumerate(vectors)
    ]
    for start in range(0, 2000, 1000):
        store.add("c", records[start : start + 1000])
    keywords = KeywordIndex(tmp_path / "bm25")

    def agree(present: list[int]) -> None:
        keywords.rebuild("c", list(store.rows("c")))
        index = keywords.load("c")
        assert index is not None
        recall = []
        for i in present[::150]:
            nearest = np.argsort(-(vectors[present] @ vectors[i]))[:10]
            exact = [records[present[j]].chunk_id for j in nearest.tolist()]
            hits = store.search("c", vectors[i], 10)
            assert hits[0].chunk_id == records[i].chunk_id and hits[0].score == pytest.approx(1.0, abs=1e-2)
            assert hits[0].document_id == records[i].document_id
            recall.append(len(set(exact) & {h.chunk_id for h in hits}) / 10)
            keys, scores = store.search_keys("c", vectors[i], 10)
            rows = index.rows_of_keys(keys)
            assert (rows >= 0).all()
            assert [index.chunk_ids[r] for r in rows.tolist()] == [h.chunk_id for h in hits]
            assert np.allclose(scores, [h.score for h in hits], atol=1e-6)
        assert np.mean(recall) >= 0.9

    agree(list(range(2000)))  # exhaustive search over two fragments
    fragments = {f.fragment_id for f in store._dataset("c")[0].get_fragments()}
    store.optimize("c")  # the ANN index, and compaction: every row gets a new address
    assert any(i.index_type == "IvfHnswSq" for i in store._table("c").list_indices())
    assert fragments.isdisjoint(f.fragment_id for f in store._dataset("c")[0].get_fragments())
    agree(list(range(2000)))
    store.add("c", records[2000:])  # a new fragment, not yet in the ANN index
    store.delete_document("c", f"{7:032x}")
    present = [j for j in range(3000) if j % 50 != 7]
    agree(present)
    store.optimize("c")
    agree(present)
    wanted = {f"{3:032x}", f"{17:032x}"}
    filtered = store.search("c", vectors[3], 200, wanted)
    members = [j for j, r in enumerate(records) if r.document_id in wanted]
    assert {h.chunk_id for h in filtered} == {records[j].chunk_id for j in members}
    keys, _ = store.search_keys("c", vectors[3], 200, wanted)
    assert set(keys.tolist()) == {chunk_key(records[j].chunk_id) for j in members}


async def test_an_inactive_version_never_feeds_back(rag):
    """A newer, not yet active version of `a` is the closest chunk to the query. It must be neither returned
    nor used as feedback: the ranking is the one without it."""
    q = _unit((0, 1.0))
    collection_id, docs = await _collection(
        rag,
        {
            "a": ("supersonic intake design", _unit((0, 1.0), (1, 0.3))),
            "b": ("ramp geometry notes", _unit((0, 0.7), (1, 0.714))),
            "c": ("unrelated cooling notes", _unit((0, 0.75), (2, -0.66))),
            "d": ("nothing in common", _unit((3, 1.0))),
        },
    )
    rag.config.feedback = 1
    before = await rag.search_stage(collection_id, "supersonic", q, mode="hybrid", top_k=10)
    pending = ChunkRecord(new_id(), docs["a"], new_id(), 0, -1, "", "supersonic supersonic", "{}", q)
    rag.store.add(collection_id, [pending])
    await rag.indexes.rebuild_keywords(collection_id)
    after = await rag.search_stage(collection_id, "supersonic", q, mode="hybrid", top_k=10)
    assert pending.chunk_id not in {s.chunk_id for s in after}
    # (BM25 statistics changed with the new chunk, so compare the order, not the scores.)
    assert [s.chunk_id for s in after] == [s.chunk_id for s in before]
    assert [s.metadata["source"] for s in after][:3] == ["a", "b", "c"]


async def test_chunks_the_keyword_index_lacks_are_found_by_chunk_id(rag):
    """Another process wrote and activated document `e` and has not finished rebuilding the keyword index:
    its chunk, the nearest of all, is still returned (named by the vector store), while a chunk of a version
    that is not active, also unknown to the index, is not. (The vector store's path: a collection above
    `exact_rows`; for the exact path, see `test_exact_search_falls_back_when_the_index_is_rebuilt_...`.)"""
    rag.config.exact_rows = 0
    q = _unit((0, 1.0))
    collection_id, docs = await _collection(
        rag,
        {
            "a": ("supersonic intake design", _unit((0, 1.0), (1, 0.3))),
            "b": ("ramp geometry notes", _unit((0, 0.7), (1, 0.714))),
            "d": ("nothing in common", _unit((3, 1.0))),
        },
    )
    before = await rag.search_stage(collection_id, "supersonic", q, mode="hybrid", top_k=10)
    doc, version = new_id(), new_id()
    async with rag.db.transaction() as session:
        session.add(_document(collection_id, "e", doc, version))
    fresh = ChunkRecord(new_id(), doc, version, 0, -1, "", "supersonic intake testing", "{}", q)
    pending = ChunkRecord(
        new_id(), docs["b"], new_id(), 0, -1, "", "supersonic", "{}", _unit((0, 1.0), (2, 0.1))
    )
    rag.store.add(collection_id, [fresh, pending])
    for mode in ("hybrid", "dense"):
        after = await rag.search_stage(collection_id, "supersonic", q, mode=mode, top_k=10)
        found = {s.chunk_id: s for s in after}
        assert found[fresh.chunk_id].text == "supersonic intake testing"
        assert found[fresh.chunk_id].metadata["source"] == "e"
        assert after[0].chunk_id == (fresh.chunk_id if mode == "dense" else before[0].chunk_id)
        assert pending.chunk_id not in {s.chunk_id for s in after}
        assert {s.chunk_id for s in before} <= {s.chunk_id for s in after}
    await rag.indexes.rebuild_keywords(collection_id)  # the rebuild lands: back to the row path
    rebuilt = {
        s.chunk_id for s in await rag.search_stage(collection_id, "supersonic", q, mode="hybrid", top_k=10)
    }
    assert fresh.chunk_id in rebuilt and pending.chunk_id not in rebuilt


async def test_exact_dense_search_ranks_as_the_vector_store_does(rag):
    """Below `exact_rows`, dense candidates come from the vectors beside the keyword index instead of the
    vector store's brute force: the same chunks in the same order with the same scores, in every mode and
    with a filter; a vector that is not unit length is compared by cosine, as the store does."""
    rng = np.random.default_rng(3)
    chunks = {
        f"n{i}": (f"flow note {i} " + " ".join(rng.choice(["ramp", "wing", "heat", "panel"], 3)), v)
        for i, v in enumerate(rng.standard_normal((60, DIM)).astype(np.float32))
    }
    chunks["long"] = ("flow ramp", 7.0 * _unit((0, 1.0), (1, 0.2)))  # stored at length 7
    collection_id, docs = await _collection(rag, chunks)
    q = _unit((0, 1.0), (1, 0.25), (2, -0.1))
    allowed = {docs[f"n{i}"] for i in range(0, 60, 3)} | {docs["long"]}
    for mode in ("dense", "hybrid"):
        for filtered in (None, allowed):
            got = {}
            for exact_rows in (0, 20_000):
                rag.config.exact_rows = exact_rows
                got[exact_rows] = await rag.search_stage(
                    collection_id, "flow ramp", q, mode=mode, top_k=10, allowed=filtered
                )
            assert [s.chunk_id for s in got[20_000]] == [s.chunk_id for s in got[0]]
            assert [s.score for s in got[20_000]] == pytest.approx([s.score for s in got[0]], abs=1e-5)
            if filtered is not None:
                assert {s.document_id for s in got[20_000]} <= allowed
    rag.config.exact_rows = 20_000
    dense = await rag.search_stage(collection_id, "flow", q, mode="dense", top_k=1)
    assert dense[0].metadata["source"] == "long"


async def test_exact_search_falls_back_when_the_index_is_rebuilt_during_the_query(rag):
    """The exact path finds chunks only in the keyword index this query loaded. Another process adds
    document `e` (the nearest chunk of all), rebuilds the index on disk and activates `e` while this query
    runs, before its version check: the check sees `e` active, the loaded index lacks it, so the stage takes
    the vector store's path and returns `e`, as it would have a moment later."""
    q = _unit((0, 1.0))
    collection_id, _docs = await _collection(
        rag,
        {
            "a": ("supersonic intake design", _unit((0, 1.0), (1, 0.3))),
            "b": ("ramp geometry notes", _unit((0, 0.7), (1, 0.714))),
        },
    )
    await rag.search_stage(collection_id, "supersonic", q, mode="hybrid", top_k=10)  # index loaded
    doc, version = new_id(), new_id()
    async with rag.db.transaction() as session:  # queued, not yet active
        session.add(_document(collection_id, "e", doc, version, active=False))
    fresh = ChunkRecord(new_id(), doc, version, 0, -1, "", "supersonic intake testing", "{}", q)
    plain = retrieval.search_rows
    other = KeywordIndex(rag.keywords.root)  # another process's view of the same data directory

    def racing(index, dense, weights, vector, *, check, **kw):  # type: ignore[no-untyped-def]
        def check_after_the_other_process(ids):  # type: ignore[no-untyped-def]
            if not racing.done:  # type: ignore[attr-defined]
                racing.done = True  # type: ignore[attr-defined]
                assert fresh.chunk_id not in index.row_of
                rag.store.add(collection_id, [fresh])  # the other process's batch: write, rebuild, activate
                other.rebuild(collection_id, list(rag.store.rows(collection_id)))
                with sqlite3.connect(sqlite_file(rag.db.url)) as db:
                    db.execute("UPDATE rag_documents SET active_version = ? WHERE id = ?", (version, doc))
            return check(ids | {doc})

        return plain(index, dense, weights, vector, check=check_after_the_other_process, **kw)

    racing.done = False  # type: ignore[attr-defined]
    retrieval.search_rows = racing  # type: ignore[assignment]
    try:
        after = await rag.search_stage(collection_id, "supersonic", q, mode="hybrid", top_k=10)
    finally:
        retrieval.search_rows = plain  # type: ignore[assignment]
    assert racing.done  # type: ignore[attr-defined]
    found = {s.chunk_id: s for s in after}
    assert found[fresh.chunk_id].metadata["source"] == "e"
    assert len(after) == 3


def test_top_rows_agree_with_a_full_sort():
    """The block-maximum shortcut returns exactly the rows a stable full sort ranks first, ties included."""
    rng = np.random.default_rng(7)
    for n, k in [(100_000, 100), (5_000, 100), (1_601, 100), (50, 100), (10_000, 1)]:
        scores = (rng.random(n) * (rng.random(n) > 0.3)).astype(np.float32)
        scores[rng.integers(0, n, 8)] = scores.max()  # ties at the top
        assert top_rows(scores, k).tolist() == np.argsort(-scores, kind="stable")[:k].tolist()
    assert top_rows(np.zeros(0, dtype=np.float32), 10).tolist() == []
