"""The RAG service in process, on SQLite and PostgreSQL, with LanceDB and with Qdrant (local mode): ingestion
jobs, the three retrieval modes, atomic replacement, deletion from every index, access control, filters,
bad documents and crash recovery. Embeddings and reranking use the real embedded MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from hearth.auth.service import AuthService
from hearth.config import ModelsConfig
from hearth.events import codec
from hearth.events.bus import EventBus
from hearth.events.models import OutboxEvent
from hearth.events.schemas import Event
from hearth.gateway.service import Gateway
from hearth.platform.db import Database
from hearth.platform.errors import HearthError
from hearth.platform.migrate import upgrade
from hearth.rag import events as rag_events
from hearth.rag.keyword import KeywordIndex
from hearth.rag.lance import LanceStore
from hearth.rag.models import IngestJob
from hearth.rag.personal_data import RagPersonalData
from hearth.rag.qdrant import QdrantStore
from hearth.rag.schemas import TextDocument
from hearth.rag.service import RagConfig, RagService
from hearth.rag.stores import ChunkRecord
from tests.conftest import postgres_url
from tests.test_rag_files import make_docx_bomb, make_pdf

EMBED_ONLY = {
    "backends": {
        "local-embed": {"type": "onnx_embedding"},
        "local-rerank": {"type": "embedding_rerank", "embedder": "local-embed"},
    },
    "aliases": {
        "embedder": {"kind": "embedding", "deployments": [{"backend": "local-embed"}]},
        "reranker": {"kind": "rerank", "deployments": [{"backend": "local-rerank"}]},
    },
}

DOCS = {
    "wings.txt": (
        "Wing flutter",
        "Flutter is a self-excited oscillation of an aircraft wing in which aerodynamic forces couple with "
        "the structure's elastic modes. Flutter speed drops as the wing's torsional stiffness decreases.",
    ),
    "heat.txt": (
        "Heat transfer",
        "Heat conduction in composite slabs was solved analytically for layered materials with contact "
        "resistance between the layers, giving the temperature history of re-entry heat shields.",
    ),
    "boundary.txt": (
        "Boundary layers",
        "A turbulent boundary layer on a flat plate separates under an adverse pressure gradient; "
        "suction through the wall delays the separation of the layer.",
    ),
}


@pytest.fixture
async def gateway():
    gw = Gateway(ModelsConfig.model_validate(EMBED_ONLY))
    await gw.start()
    yield gw
    await gw.close()


@pytest.fixture(
    params=[("sqlite", "lancedb"), ("postgres", "qdrant")], ids=["sqlite-lancedb", "postgres-qdrant"]
)
async def rag(request, gateway, tmp_path: Path):
    """The service on SQLite + LanceDB and on PostgreSQL + Qdrant (local mode): both SQL backends and both
    vector stores run every test, without the full cross product."""
    sql, vectors = request.param
    if sql == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'hearth.db'}"
    else:
        url = postgres_url(request.getfixturevalue("postgres_schema"))
    upgrade(url)
    database = Database(url)
    store = LanceStore(tmp_path / "lance") if vectors == "lancedb" else QdrantStore(path=tmp_path / "qdrant")
    service = RagService(
        db=database,
        bus=EventBus(database),
        gateway=gateway,
        store=store,
        keywords=KeywordIndex(tmp_path / "bm25"),
        config=RagConfig(data_dir=tmp_path),
        users=AuthService(database),
    )
    await service.start(worker=False)  # tests drive the worker with run_batch() for determinism
    auth = AuthService(database)
    service.users = {name: (await auth.create_user(username=name)).id for name in ("alice", "bob")}  # type: ignore[attr-defined]
    yield service
    await service.stop()
    await database.close()


@pytest.fixture
def database(rag):
    return rag.db


async def _drain(rag: RagService) -> None:
    while await rag.run_batch():
        pass


async def _seed(rag: RagService, user: str, collection: str = "aero") -> dict[str, str]:
    await rag.create_collection(user_id=user, name=collection)
    ids = {}
    for source, (title, text) in DOCS.items():
        doc = TextDocument(text=text, title=title, source=source, metadata={"topic": source.split(".")[0]})
        ids[source] = (await rag.ingest_text(user_id=user, collection=collection, document=doc)).document.id
    await _drain(rag)
    return ids


def _chunk_versions(rag: RagService, collection_id: str) -> dict[tuple[str, str], int]:
    return rag.store.versions(collection_id)


async def _event_types(database) -> list[str]:
    async with database.transaction() as session:
        return list((await session.scalars(select(OutboxEvent.type).order_by(OutboxEvent.seq))).all())


async def test_ingest_then_every_mode_finds_the_right_document(rag, database):
    alice = rag.users["alice"]
    ids = await _seed(rag, alice)
    for mode in ("dense", "sparse", "hybrid"):
        sources = await rag.retrieve(
            user_id=alice, collection="aero", query="why does a wing flutter?", mode=mode, top_k=10, top_n=3
        )
        assert sources, mode
        best = sources[0]
        assert best.document_id == ids["wings.txt"], mode
        assert best.title == "Wing flutter" and "oscillation" in best.text
        assert best.rerank_score is not None and best.metadata["topic"] == "wings"
        assert best.metadata["source"] == "wings.txt" and best.metadata["position"] == 0
    listed = await rag.list_documents(user_id=alice, collection="aero")
    assert {d.status for d in listed} == {"indexed"} and all(
        d.queryable and d.chunk_count == 1 for d in listed
    )
    types = await _event_types(database)
    assert types.count("DocumentIngested") == 3 and types[0] == "CollectionCreated"


async def test_reingest_is_a_noop_and_a_change_replaces_chunks_atomically(rag):
    alice = rag.users["alice"]
    ids = await _seed(rag, alice)
    collection = (await rag.get_collection(user_id=alice, collection="aero")).id
    title, text = DOCS["heat.txt"]
    same = TextDocument(text=text, title=title, source="heat.txt", metadata={"topic": "heat"})
    again = await rag.ingest_text(user_id=alice, collection="aero", document=same)
    assert again.unchanged and again.document.id == ids["heat.txt"]
    assert await rag.run_batch() == 0  # nothing was queued

    changed = TextDocument(
        text="Ablation cooling protects re-entry capsules: the heat shield chars and carries heat away.",
        title="Heat shields",
        source="heat.txt",
    )
    queued = await rag.ingest_text(user_id=alice, collection="aero", document=changed)
    assert not queued.unchanged and queued.document.id == ids["heat.txt"]
    # Until the new version is indexed, queries see the old one (never neither).
    old = await rag.retrieve(
        user_id=alice, collection="aero", query="composite slabs conduction", mode="sparse"
    )
    assert old and old[0].document_id == ids["heat.txt"] and "composite slabs" in old[0].text
    await _drain(rag)
    for mode in ("dense", "sparse", "hybrid"):
        hits = await rag.retrieve(
            user_id=alice, collection="aero", query="ablation heat shield capsule", mode=mode
        )
        mine = [h for h in hits if h.document_id == ids["heat.txt"]]
        assert len(mine) == 1 and "Ablation" in mine[0].text, mode  # never both versions
    stale = await rag.retrieve(
        user_id=alice, collection="aero", query="composite slabs conduction", mode="sparse"
    )
    assert all("composite slabs" not in h.text for h in stale)
    versions = [v for (d, v) in _chunk_versions(rag, collection) if d == ids["heat.txt"]]
    assert versions == [queued.job.id]  # the old version's chunks are gone from the store


async def test_delete_removes_chunks_from_every_index(rag, database):
    alice = rag.users["alice"]
    ids = await _seed(rag, alice)
    collection = (await rag.get_collection(user_id=alice, collection="aero")).id
    await rag.delete_document(user_id=alice, document_id=ids["boundary.txt"])
    assert all(d != ids["boundary.txt"] for d, _ in _chunk_versions(rag, collection))
    assert rag.keywords.search(collection, "turbulent boundary layer separation", 10) == [] or all(
        h.document_id != ids["boundary.txt"]
        for h in rag.keywords.search(collection, "turbulent boundary", 10)
    )
    with pytest.raises(HearthError) as missing:
        await rag.get_document(user_id=alice, document_id=ids["boundary.txt"])
    assert missing.value.status == 404
    assert "DocumentDeleted" in await _event_types(database)
    await rag.delete_collection(user_id=alice, collection="aero")
    assert collection not in rag.store.collections()


async def test_other_users_get_404_and_shares_are_read_only(rag):
    alice, bob = rag.users["alice"], rag.users["bob"]
    ids = await _seed(rag, alice)
    for call in (
        rag.retrieve(user_id=bob, collection="aero", query="flutter"),
        rag.get_collection(user_id=bob, collection="aero"),
        rag.list_documents(user_id=bob, collection="aero"),
        rag.get_document(user_id=bob, document_id=ids["wings.txt"]),
        rag.delete_document(user_id=bob, document_id=ids["wings.txt"]),
        rag.retrieve(user_id=alice, collection="no-such-collection", query="flutter"),
    ):
        with pytest.raises(HearthError) as err:
            await call
        assert err.value.status == 404
    assert await rag.list_collections(user_id=bob) == []

    shared = await rag.share(user_id=alice, collection="aero", username="bob")
    assert shared.shared_with == ["bob"]
    hits = await rag.retrieve(user_id=bob, collection=shared.id, query="wing flutter", top_n=1)
    assert hits[0].document_id == ids["wings.txt"]
    assert [c.owned for c in await rag.list_collections(user_id=bob)] == [False]
    for call in (
        rag.ingest_text(
            user_id=bob, collection=shared.id, document=TextDocument(text="graffiti", source="x.txt")
        ),
        rag.delete_document(user_id=bob, document_id=ids["wings.txt"]),
        rag.delete_collection(user_id=bob, collection=shared.id),
    ):
        with pytest.raises(HearthError) as err:
            await call
        assert err.value.status == 403
    await rag.unshare(user_id=alice, collection="aero", username="bob")
    with pytest.raises(HearthError) as err:
        await rag.retrieve(user_id=bob, collection=shared.id, query="flutter")
    assert err.value.status == 404


async def test_a_query_finds_the_collection_the_repository_would(rag):
    """The query path's own lookup (`visible_collection_id`, no ORM session) follows the repository's rules:
    by id or name, the caller's own collection before one shared under the same name, 404 for the rest."""
    alice, bob = rag.users["alice"], rag.users["bob"]
    ids = await _seed(rag, alice)
    mine = await rag.create_collection(user_id=bob, name="aero")
    doc = TextDocument(text="Wing flutter of a glider, measured in flight.", source="bob.txt")
    bob_doc = (await rag.ingest_text(user_id=bob, collection="aero", document=doc)).document.id
    await _drain(rag)
    shared = await rag.share(user_id=alice, collection="aero", username="bob")
    by_name = await rag.search(user_id=bob, collection="aero", query="wing flutter", top_n=5)
    assert by_name.collection_id == mine.id and {s.document_id for s in by_name.sources} == {bob_doc}
    by_id = await rag.search(user_id=bob, collection=shared.id, query="wing flutter", top_n=1)
    assert by_id.collection_id == shared.id and by_id.sources[0].document_id == ids["wings.txt"]
    with pytest.raises(HearthError) as err:
        await rag.search(user_id=alice, collection=mine.id, query="wing flutter")
    assert err.value.status == 404 and err.value.body()["error"]["param"] == "collection"


async def test_query_events_reach_the_outbox_in_batches_and_erasure_drops_unstored_ones(rag, database):
    """RAGQueryExecuted is not committed by the query itself: it is stored with the next batch, with what
    the query returned, and a user erased before that batch leaves no event behind."""
    alice, bob = rag.users["alice"], rag.users["bob"]
    await _seed(rag, alice)
    await rag.share(user_id=alice, collection="aero", username="bob")
    await rag.query_events.stop()  # no ticks: this test stores the batches itself
    answered = await rag.query(user_id=alice, collection="aero", query="wing flutter", generate=False)
    await rag.query(user_id=bob, collection="aero", query="heat shields", generate=False)
    assert rag.query_events.pending == 2
    await RagPersonalData(rag.db, rag.collections, rag.store, rag.uploads, rag.query_events).erase_user(bob)
    await rag.query_events.flush()
    async with database.transaction() as session:
        rows = (
            await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "RAGQueryExecuted"))
        ).all()
    events = [codec.decode(r.type, r.content_type, r.payload) for r in rows]
    assert [e.user_id for e in events] == [alice]  # type: ignore[attr-defined]
    assert events[0].source_chunk_ids == [s.chunk_id for s in answered.sources]  # type: ignore[attr-defined]
    # Stopping the service stores what is still queued.
    await rag.query(user_id=alice, collection="aero", query="boundary layer", generate=False)
    await rag.query_events.stop()
    assert (await _event_types(database)).count("RAGQueryExecuted") == 2


async def _share_events(database) -> list[Event]:
    async with database.transaction() as session:
        rows = (
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.type.in_(("CollectionShared", "CollectionUnshared")))
                .order_by(OutboxEvent.seq)
            )
        ).all()
        return [codec.decode(r.type, r.content_type, r.payload) for r in rows]


async def test_sharing_and_unsharing_publish_their_events_once(rag, database):
    """The audit log hears of every change of access, with the collection, its owner and the other user;
    a repeated share or unshare changes nothing and publishes nothing."""
    alice, bob = rag.users["alice"], rag.users["bob"]
    collection = await rag.create_collection(user_id=alice, name="aero")
    with pytest.raises(HearthError) as err:
        await rag.share(user_id=alice, collection="aero", username="alice")
    assert err.value.status == 400
    with pytest.raises(HearthError) as err:
        await rag.share(user_id=bob, collection=collection.id, username="bob")
    assert err.value.status == 404
    await rag.share(user_id=alice, collection="aero", username="bob")
    await rag.share(user_id=alice, collection="aero", username="bob")
    with pytest.raises(HearthError) as err:
        await rag.unshare(user_id=bob, collection=collection.id, username="bob")
    assert err.value.status == 403
    unshared = await rag.unshare(user_id=alice, collection="aero", username="bob")
    await rag.unshare(user_id=alice, collection="aero", username="bob")
    assert unshared.shared_with == []
    ids = {"collection_id": collection.id, "owner_id": alice, "user_id": bob}
    assert [
        (type(e), e.model_dump(exclude={"id", "occurred_at"})) for e in await _share_events(database)
    ] == [
        (rag_events.CollectionShared, ids),
        (rag_events.CollectionUnshared, ids),
    ]


async def test_metadata_filters(rag):
    alice = rag.users["alice"]
    ids = await _seed(rag, alice)
    hits = await rag.retrieve(
        user_id=alice,
        collection="aero",
        query="wing flutter",
        filters={"topic": ["heat", "boundary"]},
        top_n=10,
    )
    assert hits and {h.document_id for h in hits} <= {ids["heat.txt"], ids["boundary.txt"]}
    only = await rag.retrieve(
        user_id=alice, collection="aero", query="layers", filters={"source": "heat.txt"}
    )
    assert {h.document_id for h in only} == {ids["heat.txt"]}
    assert await rag.retrieve(user_id=alice, collection="aero", query="wing", filters={"topic": "none"}) == []
    with pytest.raises(HearthError) as err:
        await rag.retrieve(user_id=alice, collection="aero", query="wing", filters={"topic": {"$in": [1]}})
    assert err.value.status == 400


async def test_bad_documents_fail_with_reasons_and_leave_others_indexed(rag):
    alice = rag.users["alice"]
    await rag.create_collection(user_id=alice, name="mixed")
    good = await rag.ingest_file(
        user_id=alice,
        collection="mixed",
        filename="good.pdf",
        data=make_pdf(["Supersonic inlets need bleed."]),
    )
    # Files a cheap check can tell are unreadable are refused up front (issue 20, row 7): nothing is queued.
    refused = {
        "locked.pdf": (make_pdf(["secret"], password="pw"), "password-protected"),
        "corrupt.pdf": (b"%PDF-1.7 garbage", "corrupt"),
        "bomb.docx": (make_docx_bomb(), "zip bomb"),
    }
    for name, (data, reason) in refused.items():
        with pytest.raises(HearthError) as err:
            await rag.ingest_file(user_id=alice, collection="mixed", filename=name, data=data)
        assert (err.value.status, err.value.code) == (422, "unreadable_file") and reason in err.value.message
    junk = await rag.ingest_file(
        user_id=alice, collection="mixed", filename="junk.txt", data=bytes(range(256)) * 40
    )
    await _drain(rag)
    assert "binary" in (await rag.get_job(user_id=alice, job_id=junk.job.id)).error
    doc = await rag.get_document(user_id=alice, document_id=good.document.id)
    assert doc.status == "indexed" and doc.metadata == {}
    collection = doc.collection_id
    assert {d for d, _ in _chunk_versions(rag, collection)} == {good.document.id}  # nothing half-indexed
    hits = await rag.retrieve(user_id=alice, collection="mixed", query="supersonic inlet bleed")
    assert hits[0].metadata["page"] == 1
    for name, data, status in (
        ("../escape.txt", b"x", 400),
        ("nul\x00.txt", b"x", 400),
        ("picture.png", b"\x89PNG", 415),
        ("empty.txt", b"", 400),
    ):
        with pytest.raises(HearthError) as err:
            await rag.ingest_file(user_id=alice, collection="mixed", filename=name, data=data)
        assert err.value.status == status, name
    assert len(await rag.list_documents(user_id=alice, collection="mixed")) == 2


async def test_a_stopwords_only_document_is_indexed_and_strands_no_other(rag):
    """Issue 20, row 1: a collection whose only text is stopwords has an empty BM25 vocabulary; its keyword
    index must still build, so neither it nor the documents sharing its worker batch stay half-ingested."""
    alice, bob = rag.users["alice"], rag.users["bob"]
    await rag.create_collection(user_id=alice, name="stop")
    await rag.create_collection(user_id=bob, name="normal")
    only_stopwords = await rag.ingest_text(
        user_id=alice, collection="stop", document=TextDocument(text="the", source="the.txt")
    )
    normal = await rag.ingest_text(
        user_id=bob,
        collection="normal",
        document=TextDocument(text="Boundary layers thicken downstream.", source="bl.txt"),
    )
    await _drain(rag)  # both in one worker batch
    assert (await rag.get_document(user_id=alice, document_id=only_stopwords.document.id)).status == "indexed"
    assert (await rag.get_document(user_id=bob, document_id=normal.document.id)).status == "indexed"
    hits = await rag.retrieve(user_id=bob, collection="normal", query="boundary layer", mode="sparse")
    assert [h.document_id for h in hits] == [normal.document.id]
    assert await rag.retrieve(user_id=alice, collection="stop", query="the layer", mode="sparse") == []
    for mode in ("dense", "hybrid"):
        found = await rag.retrieve(user_id=alice, collection="stop", query="the", mode=mode)
        assert [h.document_id for h in found] == [only_stopwords.document.id], mode


async def test_an_extractor_crash_fails_only_its_own_document(rag, monkeypatch):
    """A bug in an extractor (not a refused file) fails that job with the exception named; the rest of the
    batch, extracted in the same worker thread, is indexed."""
    import hearth.rag.worker as worker

    real = worker.extract

    def flaky(data: bytes, content_type: str):
        if b"crash me" in data:
            raise RuntimeError("extractor bug")
        return real(data, content_type)

    monkeypatch.setattr(worker, "extract", flaky)
    alice = rag.users["alice"]
    await rag.create_collection(user_id=alice, name="batch")
    queued = await rag.ingest_texts(
        user_id=alice,
        collection="batch",
        documents=[
            TextDocument(text=text, source=f"{i}.txt")
            for i, text in enumerate(["Shock waves in nozzles.", "crash me please", "Heat flux on shields."])
        ],
    )
    await _drain(rag)
    jobs = [await rag.get_job(user_id=alice, job_id=q.job.id) for q in queued]
    assert [j.status for j in jobs] == ["indexed", "failed", "indexed"]
    assert jobs[1].error == "extraction failed: RuntimeError: extractor bug"
    hits = await rag.retrieve(user_id=alice, collection="batch", query="heat flux shields")
    assert hits and hits[0].document_id == queued[2].document.id


async def test_recovery_requeues_interrupted_jobs_and_removes_orphan_chunks(rag, database):
    alice = rag.users["alice"]
    ids = await _seed(rag, alice)
    collection = (await rag.get_collection(user_id=alice, collection="aero")).id
    # A crash mid-batch: a job left "embedding" and chunks of a version that never became active.
    queued = await rag.ingest_text(
        user_id=alice,
        collection="aero",
        document=TextDocument(text="Vortex generators energise the flow.", source="v.txt"),
    )
    async with database.transaction() as session:
        (await session.get(IngestJob, queued.job.id)).status = "embedding"
    orphan = ChunkRecord(
        chunk_id="f" * 32,
        document_id=queued.document.id,
        version=queued.job.id,
        position=0,
        page=-1,
        title="",
        text="half-written",
        metadata=json.dumps({}),
        vector=np.ones(384, dtype=np.float32) / np.sqrt(384),
    )
    rag.store.add(collection, [orphan])
    await rag.recover()
    # Requeued, not yet cleaned: with leases (several replicas), whoever claims the job deletes the partial
    # chunks it left, so the half-written one is gone once the job is indexed again.
    assert (await rag.get_job(user_id=alice, job_id=queued.job.id)).status == "pending"
    await _drain(rag)
    counts = _chunk_versions(rag, collection)
    assert counts[(queued.document.id, queued.job.id)] == 1  # its one new chunk; the orphan would make 2
    assert {d for d, _ in counts} == set(ids.values()) | {queued.document.id}


async def test_overlapped_batches_activate_versions_in_order(rag):
    """The worker writes one batch while it embeds the next: a document changed between two batches ends
    with its newer version, alone, and both batches' documents are queryable."""
    alice = rag.users["alice"]
    await rag.create_collection(user_id=alice, name="aero")
    first = await rag.ingest_text(
        user_id=alice,
        collection="aero",
        document=TextDocument(text="Composite slabs conduct heat slowly.", title="Heat", source="heat.txt"),
    )
    assert await rag.run_batch(overlap=True) == 1  # its writes may still be running
    second = await rag.ingest_text(
        user_id=alice,
        collection="aero",
        document=TextDocument(text="Ablation shields carry heat away.", title="Heat", source="heat.txt"),
    )
    other = await rag.ingest_text(
        user_id=alice,
        collection="aero",
        document=TextDocument(text="Wing flutter couples aerodynamics and elasticity.", source="wing.txt"),
    )
    assert await rag.run_batch(overlap=True) == 2
    assert await rag.run_batch(overlap=True) == 0  # drained: every write has finished
    # The first version was indexed, or superseded if the second arrived before its writes finished.
    job = await rag.get_job(user_id=alice, job_id=first.job.id)
    assert job.status == "indexed" or job.error == "superseded by a newer version"
    assert (await rag.get_job(user_id=alice, job_id=second.job.id)).status == "indexed"
    assert (await rag.get_document(user_id=alice, document_id=first.document.id)).status == "indexed"
    collection = (await rag.get_collection(user_id=alice, collection="aero")).id
    assert {v for (d, v) in _chunk_versions(rag, collection) if d == first.document.id} == {second.job.id}
    hits = await rag.retrieve(user_id=alice, collection="aero", query="heat shield ablation", mode="hybrid")
    heat = [h for h in hits if h.document_id == first.document.id]
    assert len(heat) == 1 and "Ablation" in heat[0].text
    wing = await rag.retrieve(user_id=alice, collection="aero", query="flutter", mode="sparse")
    assert wing and wing[0].document_id == other.document.id


async def test_embedding_order_is_kept_when_texts_are_sorted_by_length(rag):
    """Texts are embedded grouped by length; each vector must still belong to its own text."""
    texts = [
        "short one",
        "a much longer text about supersonic flow over a flat plate " * 6,
        "mid length text",
    ]
    backend = rag.gateway.backends["local-embed"]
    vectors = await rag.worker.embed(texts)
    for text, vector in zip(texts, vectors, strict=True):
        assert float(np.dot(vector, backend.embed_sync([text])[0])) > 0.999


def test_keyword_index_sees_a_rebuild_by_another_process(tmp_path: Path):
    """An API process loads the index (with the chunk payloads) that a worker process rebuilt on disk."""
    row = {"document_id": "d" * 32, "version": "v" * 32, "position": 0, "page": -1, "title": "t"}
    worker, api = KeywordIndex(tmp_path), KeywordIndex(tmp_path)
    worker.rebuild("c", [{**row, "chunk_id": "a" * 32, "text": "shock waves", "metadata": "{}"}])
    assert [h.chunk_id for h in api.search("c", "shock", 10)] == ["a" * 32]
    worker.rebuild(
        "c",
        [
            {**row, "chunk_id": "a" * 32, "text": "shock waves", "metadata": "{}"},
            {**row, "chunk_id": "b" * 32, "text": "heat shields", "metadata": '{"k": 1}', "page": 3},
        ],
    )
    assert [h.chunk_id for h in api.search("c", "heat shield", 10)] == ["b" * 32]
    payload = api.payloads("c", ["b" * 32, "e" * 32])
    assert list(payload) == ["b" * 32]
    assert payload["b" * 32]["text"] == "heat shields" and payload["b" * 32]["page"] == 3
    worker.drop("c")
    assert KeywordIndex(tmp_path).search("c", "heat", 10) == []


async def test_a_second_process_sees_another_process_writes(gateway, tmp_path: Path):
    """Two server processes on one data directory (`hearth serve --workers 2`): one ingests and replaces
    documents; the other, which had already searched the collection, finds the new document and only the new
    version in every mode. (LanceDB only: Qdrant's local mode is one process's; a Qdrant server is shared.)"""
    url = f"sqlite+aiosqlite:///{tmp_path / 'hearth.db'}"
    upgrade(url)
    database = Database(url)

    def process() -> RagService:
        return RagService(
            db=database,
            bus=EventBus(database),
            gateway=gateway,
            store=LanceStore(tmp_path / "lance"),
            keywords=KeywordIndex(tmp_path / "bm25"),
            config=RagConfig(data_dir=tmp_path),
            users=AuthService(database),
        )

    writer, reader = process(), process()
    await writer.start(worker=False)
    await reader.start(worker=False)
    try:
        alice = (await AuthService(database).create_user(username="alice")).id
        ids = await _seed(writer, alice)
        query = "why does a wing flutter?"
        first = await reader.retrieve(user_id=alice, collection="aero", query=query, mode="dense")
        assert first[0].document_id == ids["wings.txt"]
        new = TextDocument(text="Rotor blades of helicopters vibrate in forward flight.", source="rotor.txt")
        rotor = (await writer.ingest_text(user_id=alice, collection="aero", document=new)).document.id
        changed = TextDocument(
            text="Wing flutter was cured by adding mass balance to the ailerons.", source="wings.txt"
        )
        await writer.ingest_text(user_id=alice, collection="aero", document=changed)
        await _drain(writer)
        for mode in ("dense", "sparse", "hybrid"):
            hits = await reader.retrieve(
                user_id=alice, collection="aero", query="helicopter rotor blade vibration", mode=mode, top_n=5
            )
            assert hits[0].document_id == rotor, mode
            wings = await reader.retrieve(user_id=alice, collection="aero", query=query, mode=mode, top_n=5)
            mine = [h for h in wings if h.document_id == ids["wings.txt"]]
            assert len(mine) == 1 and "ailerons" in mine[0].text, mode
    finally:
        await writer.stop()
        await reader.stop()
        await database.close()
