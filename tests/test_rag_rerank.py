"""The default query path (`rerank: true` with no reranking model configured): the built-in reranker orders
a fixed collection with known relevance at least as well as fusion alone (and the old embedding reranker,
which did worse, is caught by the same collection), a query embeds nothing but the query, a configured
reranking model is still called, and `hearth rag eval --as-user` reports both paths side by side."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml
from typer.testing import CliRunner

from hearth.auth.service import AuthService
from hearth.cli.main import app as cli
from hearth.config import ModelsConfig, Settings
from hearth.events.bus import EventBus
from hearth.gateway.service import Gateway
from hearth.platform.db import Database
from hearth.platform.migrate import upgrade
from hearth.rag import evaluation, rerank
from hearth.rag.keyword import KeywordIndex
from hearth.rag.lance import LanceStore
from hearth.rag.schemas import TextDocument
from hearth.rag.service import RagConfig, RagService
from hearth.rag.wiring import builtin_rerank
from tests.harness import run_hearth
from tests.test_rag_api import CORPUS, QRELS, QUERIES
from tests.test_rag_service import EMBED_ONLY

CRANFIELD = Path(__file__).resolve().parents[2] / "shared" / "data" / "cranfield"
if not CRANFIELD.exists():
    CRANFIELD = Path("/work/shared/data/cranfield")
QUERIES_USED = 30  # Cranfield's first 30 queries, their judged documents and 150 others: a fixed collection


class Counting:
    """The real embedding backend, counting the texts each call embeds."""

    def __init__(self, backend) -> None:  # type: ignore[no-untyped-def]
        self.backend = backend
        self.calls: list[int] = []
        self.embed = backend.embed
        backend.embed = self._embed

    async def _embed(self, texts, model):  # type: ignore[no-untyped-def]
        self.calls.append(len(texts))
        return await self.embed(texts, model)


@pytest.fixture(scope="module")
def fixed() -> tuple[list[evaluation.CorpusDoc], dict[str, str], dict[str, dict[str, float]]]:
    """A small fixed part of Cranfield: its first queries, every document judged for them, and the first
    150 documents besides (distractors), with the graded judgements."""
    corpus = evaluation.load_corpus(CRANFIELD / "cran.all.1400", "smart")
    queries = evaluation.load_queries(CRANFIELD / "cran.qry", "smart")
    qrels = evaluation.load_qrels(CRANFIELD / "cranqrel", "smart")
    used = {q: queries[q] for q in list(queries)[:QUERIES_USED] if qrels.get(q)}
    judged = {d for q in used for d in qrels[q]}
    docs = [d for i, d in enumerate(corpus) if (d.id in judged or i < 150) and (d.text or d.title).strip()]
    return docs, used, {q: qrels[q] for q in used}


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[RagService]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hearth.db'}"
    upgrade(url)
    database = Database(url)
    gateway = Gateway(ModelsConfig.model_validate(EMBED_ONLY))
    await gateway.start()
    rag = RagService(
        db=database,
        bus=EventBus(database),
        gateway=gateway,
        store=LanceStore(tmp_path / "lance"),
        keywords=KeywordIndex(tmp_path / "bm25"),
        config=RagConfig(data_dir=tmp_path),
        users=AuthService(database),
    )
    await rag.start(worker=False)
    rag.user = (await AuthService(database).create_user(username="alice")).id  # type: ignore[attr-defined]
    yield rag
    await rag.stop()
    await gateway.close()
    await database.close()


async def _load(rag: RagService, docs: list[evaluation.CorpusDoc]) -> None:
    await rag.create_collection(user_id=rag.user, name="cran")  # type: ignore[attr-defined]
    bodies = [TextDocument(text=d.text or d.title, title=d.title or None, source=d.id) for d in docs]
    await rag.ingest_texts(user_id=rag.user, collection="cran", documents=bodies)  # type: ignore[attr-defined]
    while await rag.run_batch():
        pass


async def _ndcg(rag: RagService, queries: dict[str, str], qrels, **request) -> float:  # type: ignore[no-untyped-def]
    runs = {}
    for qid, text in queries.items():
        result = await rag.search(user_id=rag.user, collection="cran", query=text, **request)  # type: ignore[attr-defined]
        runs[qid] = evaluation.documents_in_order(s.metadata["source"] for s in result.sources)
    return evaluation.score(runs, qrels).ndcg10


async def test_default_rerank_orders_a_judged_collection_no_worse_than_fusion(service, fixed):
    docs, queries, qrels = fixed
    await _load(service, docs)
    # What a user gets by default (rerank on, top_k 10), ten sources; against fusion alone, deep.
    default = await _ndcg(service, queries, qrels, top_n=10)
    fusion = await _ndcg(service, queries, qrels, top_k=100, top_n=100, rerank=False)
    fusion_shallow = await _ndcg(service, queries, qrels, top_k=10, top_n=10, rerank=False)
    assert default >= fusion, (default, fusion)
    assert default > fusion_shallow, (default, fusion_shallow)
    # The same collection catches a reranker that orders worse than fusion: the old default, cosine of
    # every candidate embedded again by the embedder (still what the `reranker` alias serves on /v1/rerank).
    service.config.builtin_rerank = False
    embedding = await _ndcg(service, queries, qrels, top_n=10)
    assert embedding < fusion, (embedding, fusion)


async def test_a_default_query_embeds_only_the_query(service, fixed):
    docs, queries, _qrels = fixed
    await _load(service, docs[:40])
    counter = Counting(service.gateway.backends["local-embed"])
    result = await service.search(user_id=service.user, collection="cran", query=next(iter(queries.values())))
    assert counter.calls == [1]  # the query; every candidate's vector is read from the index
    assert len(result.sources) == 3 and all(s.rerank_score is not None for s in result.sources)
    assert [s.rerank_score for s in result.sources] == sorted(
        (s.rerank_score for s in result.sources), reverse=True
    )
    # A reranking model behind the `reranker` alias is called instead, with the candidates' texts.
    service.config.builtin_rerank = False
    counter.calls.clear()
    await service.search(user_id=service.user, collection="cran", query="boundary layer", top_k=7)
    assert counter.calls == [1, 1 + 7]


def test_rerank_prefers_one_chunk_per_document_and_a_supported_candidate():
    vectors = np.eye(4, dtype=np.float32)
    vectors[2] = np.array([0.96, 0.28, 0, 0], dtype=np.float32)  # close to candidate 0, the best one
    vectors[1] = np.array([0, 0, 1, 0], dtype=np.float32)  # close to none
    # Two chunks of document a lead; the second of them falls behind document b's chunk.
    scores = rerank.rerank(np.array([1.0, 0.95, 0.9, 0.2]), None, ["a", "a", "b", "c"])
    assert list(np.argsort(-scores, kind="stable")) == [0, 2, 1, 3]
    # Candidate 2, next to the best candidate, overtakes the lone candidate 1.
    scores = rerank.rerank(np.array([1.0, 0.9, 0.88, 0.2]), vectors, ["a", "b", "c", "d"])
    assert list(np.argsort(-scores, kind="stable")) == [0, 2, 1, 3]


def test_builtin_rerank_unless_a_reranking_model_is_configured(tmp_path: Path):
    def settings(models: dict) -> Settings:  # type: ignore[type-arg]
        path = tmp_path / "hearth.yaml"
        path.write_text(yaml.safe_dump(models))
        return Settings(data_dir=tmp_path, config_file=path)

    assert builtin_rerank(settings({}))  # the default catalogue: the embedding reranker
    assert builtin_rerank(settings({"include_defaults": False}))  # no reranker alias at all
    cross = {
        "backends": {"ce": {"type": "cross_encoder", "model_path": str(tmp_path / "ce.onnx")}},
        "aliases": {"reranker": {"kind": "rerank", "deployments": [{"backend": "ce"}]}},
    }
    assert not builtin_rerank(settings(cross))


def test_smart_qrels_of_the_other_collections(tmp_path: Path):
    # CISI, CACM, MED: only relevant pairs are listed, "qid doc 0 0.000000"; Cranfield grades 1-4 and -1.
    (tmp_path / "cisi").write_text("1     28\t0\t0.000000\n 1     35\t0\t0.000000\n2 7 0 0.0\n")
    assert evaluation.load_qrels(tmp_path / "cisi", "smart") == {
        "1": {"28": 1.0, "35": 1.0},
        "2": {"7": 1.0},
    }
    (tmp_path / "cran").write_text("1 184 2\n1 29 -1\n")
    assert evaluation.load_qrels(tmp_path / "cran", "smart") == {"1": {"184": 3.0}}


def test_eval_as_user_reports_the_default_request_beside_the_evaluated_path(tmp_path: Path):
    (tmp_path / "corpus").write_text(CORPUS)
    (tmp_path / "queries").write_text(QUERIES)
    (tmp_path / "qrels").write_text(QRELS)
    with run_hearth(tmp_path / "server", {"include_defaults": False, **EMBED_ONLY}) as hearth:
        runner = CliRunner()
        auth = ["--url", hearth.url, "--api-key", hearth.admin_key]
        loaded = runner.invoke(cli, ["rag", "load", str(tmp_path / "corpus"), "--collection", "m", *auth])
        assert loaded.exit_code == 0 and "3 indexed" in loaded.output, loaded.output
        args = ["rag", "eval", "--collection", "m", "--queries", str(tmp_path / "queries"), "--as-user"]
        args += ["--qrels", str(tmp_path / "qrels"), "--format", "smart", "--modes", "hybrid", *auth]
        evaluated = runner.invoke(cli, [*args, "--json"])
        assert evaluated.exit_code == 0, evaluated.output
        scores = orjson.loads(evaluated.output.strip().splitlines()[-1])
        assert list(scores) == ["as user (default request)", "hybrid, rerank off, 100"]
        for row in scores.values():
            assert row["queries"] == 2 and row["ndcg10"] == pytest.approx(1.0) and row["p50_ms"] > 0
        table = runner.invoke(cli, args)
        assert table.exit_code == 0 and "as user (default request)" in table.output, table.output
