"""RAG request and response bodies (pydantic): collections, documents, ingestion jobs, queries."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from hearth.platform.kit.schemas import ORMModel
from hearth.platform.kit.time import UtcTimestamp

Mode = Literal["dense", "sparse", "hybrid"]
JobStatus = Literal["pending", "extracting", "embedding", "indexed", "failed"]


class RagSource(BaseModel):
    """One retrieved chunk, as returned to clients and handed to chat/voice."""

    chunk_id: str
    document_id: str
    title: str
    text: str
    score: float  # the retrieval score (fused for hybrid)
    rerank_score: float | None = None
    metadata: dict[str, Any] = {}


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")
    description: str = Field("", max_length=2000)


class CollectionOut(BaseModel):
    id: str
    name: str
    description: str
    owner_id: str
    owned: bool  # False: shared with the caller read-only
    shared_with: list[str] = []  # usernames (only shown to the owner)
    document_count: int = 0
    created_at: UtcTimestamp


class ShareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)


_SCALAR = [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
# Published in the OpenAPI document: what `check_metadata` and the filters accept (flat values).
METADATA_SCHEMA: dict[str, Any] = {
    "maxProperties": 64,
    "additionalProperties": {
        "anyOf": [
            *_SCALAR,
            {"type": "null"},
            {"type": "array", "items": {"anyOf": [*_SCALAR, {"type": "null"}]}},
        ]
    },
}
FILTERS_SCHEMA: dict[str, Any] = {
    "additionalProperties": {
        "anyOf": [*_SCALAR, {"type": "array", "items": {"anyOf": _SCALAR}, "minItems": 1}]
    }
}

MAX_TEXT_CHARS = 2_000_000
MAX_METADATA_BYTES = 16 * 1024  # stored on every chunk of the document


class TextDocument(BaseModel):
    """A document sent as JSON text instead of a file."""

    model_config = ConfigDict(extra="forbid")

    # ~2 MB: about 500 pages of prose. Larger texts belong in files (bounded by HEARTH_MAX_UPLOAD_BYTES); one
    # 10 MB text took 1.6 GB of memory and minutes of embedding.
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    title: str | None = Field(None, max_length=500)
    source: str | None = Field(None, max_length=1024)  # stable name: re-sending it replaces the document
    format: Literal["txt", "md", "html"] = "txt"
    metadata: dict[str, Any] = Field({}, json_schema_extra=METADATA_SCHEMA)

    @field_validator("metadata")
    @classmethod
    def _scalars(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_metadata(value)


def check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """Metadata is flat (scalars or lists of scalars) so it can be filtered on."""
    if len(value) > 64:
        raise ValueError("at most 64 metadata keys")
    for key, item in value.items():
        items = item if isinstance(item, list) else [item]
        if not all(isinstance(i, str | int | float | bool) or i is None for i in items):
            raise ValueError(f"metadata {key!r}: values must be strings, numbers, booleans or lists of them")
        # JSON numbers beyond 64 bits cannot be stored or filtered on (and orjson refuses to write them).
        if any(isinstance(i, int) and not -(2**63) <= i < 2**63 for i in items):
            raise ValueError(f"metadata {key!r}: integers must fit in 64 bits")
    if len(orjson.dumps(value)) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is larger than {MAX_METADATA_BYTES} bytes as JSON")
    return value


class JobOut(ORMModel):
    id: str
    document_id: str
    collection_id: str
    status: JobStatus
    error: str | None = None
    chunk_count: int = 0
    created_at: UtcTimestamp
    updated_at: UtcTimestamp


class DocumentOut(ORMModel):
    id: str
    collection_id: str
    source: str
    title: str
    content_type: str
    content_hash: str
    status: JobStatus  # the latest ingestion job's status
    error: str | None = None
    queryable: bool  # a version of it is indexed
    chunk_count: int = 0
    # The ORM row keeps it in `meta` (`metadata` is SQLAlchemy's own attribute on a model).
    metadata: dict[str, Any] = Field({}, validation_alias=AliasChoices("meta", "metadata"))
    job_id: str  # the latest ingestion job
    created_at: UtcTimestamp
    updated_at: UtcTimestamp


class IngestResponse(BaseModel):
    document: DocumentOut
    job: JobOut
    unchanged: bool = False  # identical content was already ingested: nothing new to do


MAX_BATCH = 1000  # documents or files per bulk request


class TextDocumentBatch(BaseModel):
    """Many documents as JSON text in one request: queued in one transaction, all or none."""

    model_config = ConfigDict(extra="forbid")

    documents: list[TextDocument] = Field(min_length=1, max_length=MAX_BATCH)


class BatchIngestResponse(BaseModel):
    items: list[IngestResponse]  # one per document, in request order
    queued: int  # documents with a new job
    unchanged: int  # documents whose identical content was already ingested


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str = Field(min_length=1)
    query: str = Field(min_length=1, max_length=8000, json_schema_extra={"pattern": r"\S"})  # not blank
    top_k: int = Field(10, ge=1, le=1000)
    top_n: int = Field(3, ge=1, le=1000)
    mode: Mode | None = None
    filters: dict[str, Any] | None = Field(None, json_schema_extra=FILTERS_SCHEMA)
    rerank: bool = True
    generate: bool = True
    stream: bool = False
    max_tokens: int = Field(512, ge=1, le=8192)
    temperature: float = Field(0.2, ge=0, le=2)


class QueryResponse(BaseModel):
    answer: str | None
    sources: list[RagSource]
    mode: Mode
    latency_ms: dict[str, float]  # embed, search, rerank, generate, total
    # generated: the model's answer; extractive_fallback: it was not grounded in the sources (answer_note
    # says why), so the answer is the sources' best sentences; None: no answer was asked for.
    answer_mode: Literal["generated", "extractive_fallback"] | None = None
    answer_note: str | None = None
    citations: list[dict[str, Any]] = []  # {n, file, title, document_id, chunk_id, page?} per cited [n]
    deployment: str | None = None  # the model deployment that generated (x-hearth-deployment)
    fallback: str | None = None  # why a fallback deployment generated, when one did
