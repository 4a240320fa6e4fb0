"""How the rag context plugs into the platform (see hearth.platform.core): provides `Retriever` and
`RetrievalEvaluator`."""

from __future__ import annotations

from hearth.auth.ports import USERS
from hearth.config import Settings
from hearth.platform.core import Context, Platform
from hearth.rag import ports
from hearth.rag.api import router
from hearth.rag.config import RagConfig
from hearth.rag.evaluation import Evaluator
from hearth.rag.keyword import KeywordIndex
from hearth.rag.lance import LanceStore
from hearth.rag.personal_data import RagPersonalData
from hearth.rag.qdrant import QdrantStore
from hearth.rag.service import RagService
from hearth.rag.stores import VectorStore


def make_store(settings: Settings) -> VectorStore:
    """Qdrant when a server URL or a local-mode path is configured, else LanceDB in the data directory."""
    if settings.qdrant_url:
        return QdrantStore(url=settings.qdrant_url, api_key=settings.qdrant_api_key)
    if settings.qdrant_path:
        return QdrantStore(path=settings.qdrant_path)
    return LanceStore(settings.data_dir / "rag" / "lancedb", ann_threshold=settings.rag_ann_threshold)


def builtin_rerank(settings: Settings, alias: str = "reranker") -> bool:
    """Whether `rerank: true` runs the built-in reranker: the alias is missing, or every deployment of it is
    an `embedding_rerank` backend (cosine of the same embedder's vectors, which the built-in one reads from
    the index instead of embedding every candidate again). Any other backend is a model worth calling."""
    models = settings.models
    found = models.aliases.get(alias)
    if found is None:
        return True
    return all(models.backends[d.backend].type == "embedding_rerank" for d in found.deployments)


def rag_config(settings: Settings) -> RagConfig:
    return RagConfig(
        data_dir=settings.data_dir,
        chunk_tokens=settings.rag_chunk_tokens,
        chunk_overlap=settings.rag_chunk_overlap,
        title_tokens=settings.rag_title_tokens,
        default_mode=settings.rag_default_mode,
        fusion=settings.rag_fusion,
        sparse_weight=settings.rag_sparse_weight,
        candidates=settings.rag_candidates,
        feedback=settings.rag_feedback,
        feedback_terms=settings.rag_feedback_terms,
        exact_rows=settings.rag_ann_threshold,
        embed_batch=settings.rag_embed_batch,
        worker_batch=settings.rag_worker_batch,
        builtin_rerank=builtin_rerank(settings),
        lease_seconds=settings.lease_seconds,
    )


async def start(platform: Platform) -> RagService:
    settings = platform.settings
    if settings.rag_chunk_overlap >= settings.rag_chunk_tokens:
        raise ValueError("HEARTH_RAG_CHUNK_OVERLAP must be smaller than HEARTH_RAG_CHUNK_TOKENS")
    service = RagService(
        db=platform.db,
        bus=platform.bus,
        gateway=platform.gateway,
        store=make_store(settings),
        keywords=KeywordIndex(settings.data_dir / "rag" / "bm25"),
        config=rag_config(settings),
        users=platform.ports.require(USERS),
    )
    await service.start(worker=settings.rag_worker)
    platform.personal_data.register(
        RagPersonalData(
            platform.db, service.collections, service.store, service.uploads, service.query_events
        )
    )
    platform.ports.provide(ports.RETRIEVER, service)
    platform.ports.provide(ports.DOCUMENTS, service)
    platform.ports.provide(ports.EVALUATOR, Evaluator(service.searcher))
    platform.ports.provide(ports.SERVICE, service)
    return service


async def stop(service: RagService) -> None:
    await service.stop()


CONTEXT = Context(name="rag", start=start, stop=stop, routers=(router,))
