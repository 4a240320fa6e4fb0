"""Routes under /api/rag: collections and sharing, documents (multipart or JSON text), jobs, queries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from hearth.auth.deps import CurrentUser
from hearth.auth.principal import Principal
from hearth.gateway.service import metered_caller
from hearth.platform.deps import port
from hearth.platform.errors import HearthError, bad_request, invalid
from hearth.platform.kit.openapi import MODEL_ERRORS, errors, event_stream, json_body, multipart_schema
from hearth.platform.kit.repository import MAX_SQL_INT
from hearth.platform.kit.sse import SSEResponse, frame
from hearth.rag.ports import SERVICE
from hearth.rag.schemas import (
    MAX_BATCH,
    BatchIngestResponse,
    CollectionCreate,
    CollectionOut,
    DocumentOut,
    IngestResponse,
    JobOut,
    QueryRequest,
    QueryResponse,
    ShareRequest,
    TextDocument,
    TextDocumentBatch,
)
from hearth.rag.service import RagService
from hearth.rag.uploads import FileUpload

router = APIRouter(prefix="/api/rag", tags=["rag"])

Rag = Annotated[RagService, Depends(port(SERVICE))]


@router.post("/collections", status_code=201, response_model=CollectionOut, responses=errors(409))
async def create_collection(body: CollectionCreate, rag: Rag, principal: CurrentUser) -> CollectionOut:
    """Create a collection owned by the caller."""
    return await rag.create_collection(
        user_id=principal.user_id, name=body.name, description=body.description
    )


@router.get("/collections", response_model=list[CollectionOut])
async def list_collections(rag: Rag, principal: CurrentUser) -> list[CollectionOut]:
    """The caller's collections and those shared with them."""
    return await rag.list_collections(user_id=principal.user_id)


@router.get("/collections/{collection}", response_model=CollectionOut)
async def get_collection(collection: str, rag: Rag, principal: CurrentUser) -> CollectionOut:
    """One collection, by id or name."""
    return await rag.get_collection(user_id=principal.user_id, collection=collection)


@router.delete("/collections/{collection}", status_code=204, responses=errors(403))
async def delete_collection(collection: str, rag: Rag, principal: CurrentUser) -> Response:
    """Delete a collection, its documents and their chunks."""
    await rag.delete_collection(user_id=principal.user_id, collection=collection)
    return Response(status_code=204)


@router.post("/collections/{collection}/shares", response_model=CollectionOut, responses=errors(403))
async def share_collection(
    collection: str, body: ShareRequest, rag: Rag, principal: CurrentUser
) -> CollectionOut:
    """Share a collection read-only with another user."""
    return await rag.share(user_id=principal.user_id, collection=collection, username=body.username)


@router.delete(
    "/collections/{collection}/shares/{username}", response_model=CollectionOut, responses=errors(403)
)
async def unshare_collection(
    collection: str, username: str, rag: Rag, principal: CurrentUser
) -> CollectionOut:
    """Withdraw a share."""
    return await rag.unshare(user_id=principal.user_id, collection=collection, username=username)


_DOCUMENT_FORM = multipart_schema(
    {
        "source": {"type": "string", "description": "stable name: re-sending it replaces the document"},
        "title": {"type": "string"},
        "metadata": {"type": "string", "description": "a JSON object of scalars or lists of scalars"},
    }
)
_BATCH_FORM = {
    "type": "object",
    "properties": {
        "file": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "minItems": 1,
            "maxItems": MAX_BATCH,
        },
        "source": {"type": "array", "items": {"type": "string"}, "description": "one per file, or none"},
    },
    "required": ["file"],
}
_INGESTED = {200: {"model": IngestResponse, "description": "Identical content was already ingested"}}


@router.post(
    "/collections/{collection}/documents",
    response_model=IngestResponse,
    status_code=202,
    openapi_extra=json_body(TextDocument, multipart=_DOCUMENT_FORM),
    responses={**errors(403, 415), **_INGESTED},
)
async def add_document(
    collection: str, request: Request, response: Response, rag: Rag, principal: CurrentUser
) -> IngestResponse:
    """Queue a document: multipart (`file`, optional `source`, `title`, `metadata` as JSON) or JSON text."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        result = await _upload(rag, request, collection, principal)
    elif content_type.startswith("application/json"):
        try:
            body = TextDocument.model_validate_json(await request.body())
        except ValidationError as exc:
            if exc.errors() and exc.errors()[0].get("type") == "json_invalid":
                raise bad_request("request body is not valid JSON", code="invalid_json") from None
            raise invalid(exc.errors()) from None
        result = await rag.ingest_text(user_id=principal.user_id, collection=collection, document=body)
    else:
        raise HearthError(
            415,
            "send multipart/form-data with a `file` field, or JSON text",
            code="unsupported_media_type",
            type="invalid_request_error",
        )
    if result.unchanged:
        response.status_code = 200
    return result


async def _upload(rag: RagService, request: Request, collection: str, principal: Principal) -> IngestResponse:
    try:
        form = await request.form(max_files=1, max_fields=16)
    except HearthError:
        raise
    except Exception as exc:  # malformed multipart bodies
        raise bad_request(f"could not read the multipart body: {exc}", code="invalid_multipart") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise bad_request("multipart field `file` is missing", param="file")
        metadata: Any = {}
        raw = form.get("metadata")
        if isinstance(raw, str) and raw.strip():
            try:
                metadata = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise bad_request("metadata must be a JSON object", param="metadata") from None
            if not isinstance(metadata, dict):
                raise bad_request("metadata must be a JSON object", param="metadata")
        data = await upload.read()
        return await rag.ingest_file(
            user_id=principal.user_id,
            collection=collection,
            filename=upload.filename or "",
            data=data,
            source=_text(form.get("source")),
            title=_text(form.get("title")),
            metadata=metadata,
        )
    finally:
        await form.close()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@router.post(
    "/collections/{collection}/documents/batch",
    response_model=BatchIngestResponse,
    status_code=202,
    openapi_extra=json_body(TextDocumentBatch, multipart=_BATCH_FORM),
    responses={
        **errors(403, 415),
        200: {"model": BatchIngestResponse, "description": "Every document was already ingested"},
    },
)
async def add_documents(
    collection: str, request: Request, response: Response, rag: Rag, principal: CurrentUser
) -> BatchIngestResponse:
    """Queue many documents in one transaction: JSON `{"documents": [TextDocument, …]}`, or multipart with
    repeated `file` fields (and optionally one `source` field per file, in the same order). Every item is
    checked first; one invalid item refuses the whole request with a 4xx naming it, and nothing is stored."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        items = await _upload_many(rag, request, collection, principal)
    elif content_type.startswith("application/json"):
        try:
            body = TextDocumentBatch.model_validate_json(await request.body())
        except ValidationError as exc:
            if exc.errors() and exc.errors()[0].get("type") == "json_invalid":
                raise bad_request("request body is not valid JSON", code="invalid_json") from None
            raise invalid(exc.errors()) from None
        items = await rag.ingest_texts(
            user_id=principal.user_id, collection=collection, documents=body.documents
        )
    else:
        raise HearthError(
            415,
            'send multipart/form-data with `file` fields, or JSON {"documents": [...]}',
            code="unsupported_media_type",
            type="invalid_request_error",
        )
    unchanged = sum(1 for item in items if item.unchanged)
    if unchanged == len(items):
        response.status_code = 200
    return BatchIngestResponse(items=items, queued=len(items) - unchanged, unchanged=unchanged)


async def _upload_many(
    rag: RagService, request: Request, collection: str, principal: Principal
) -> list[IngestResponse]:
    try:
        form = await request.form(max_files=MAX_BATCH, max_fields=MAX_BATCH + 16)
    except HearthError:
        raise
    except Exception as exc:  # malformed multipart bodies, too many files
        raise bad_request(f"could not read the multipart body: {exc}", code="invalid_multipart") from None
    try:
        uploads = form.getlist("file")
        if not uploads:
            raise bad_request("multipart field `file` is missing", param="file")
        if not all(isinstance(u, UploadFile) for u in uploads):
            raise bad_request("every `file` field must be a file", param="file")
        sources = form.getlist("source")
        if sources and len(sources) != len(uploads):
            raise bad_request(
                f"{len(sources)} `source` fields for {len(uploads)} files: send one per file or none",
                param="source",
            )
        files = []
        for i, upload in enumerate(uploads):
            assert isinstance(upload, UploadFile)
            source = sources[i] if sources else None
            files.append(
                FileUpload(
                    filename=upload.filename or "",
                    data=await upload.read(),
                    source=source if isinstance(source, str) and source else None,
                )
            )
        return await rag.ingest_files(user_id=principal.user_id, collection=collection, files=files)
    finally:
        await form.close()


@router.get("/collections/{collection}/documents", response_model=list[DocumentOut])
async def list_documents(
    collection: str,
    rag: Rag,
    principal: CurrentUser,
    status: str | None = Query(None, pattern="^(pending|extracting|embedding|indexed|failed)$"),
    limit: int = Query(100, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=MAX_SQL_INT),
) -> list[DocumentOut]:
    """Documents of a collection, with their ingestion status."""
    return await rag.list_documents(
        user_id=principal.user_id, collection=collection, status=status, limit=limit, offset=offset
    )


@router.get("/documents/{document_id}", response_model=DocumentOut)
async def get_document(document_id: str, rag: Rag, principal: CurrentUser) -> DocumentOut:
    """One document."""
    return await rag.get_document(user_id=principal.user_id, document_id=document_id)


@router.delete("/documents/{document_id}", status_code=204, responses=errors(403))
async def delete_document(document_id: str, rag: Rag, principal: CurrentUser) -> Response:
    """Delete a document and its chunks from every index."""
    await rag.delete_document(user_id=principal.user_id, document_id=document_id)
    return Response(status_code=204)


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(job_id: str, rag: Rag, principal: CurrentUser) -> JobOut:
    """An ingestion job's status (and failure reason)."""
    return await rag.get_job(user_id=principal.user_id, job_id=job_id)


@router.post("/query", response_model=QueryResponse, responses={**errors(*MODEL_ERRORS), **event_stream()})
async def query(body: QueryRequest, request: Request, rag: Rag, principal: CurrentUser) -> Any:
    """Retrieve, rerank and answer with citations; `stream` sends the answer as server-sent events."""
    args = dict(
        user_id=principal.user_id,
        collection=body.collection,
        query=body.query,
        top_k=body.top_k,
        top_n=body.top_n,
        mode=body.mode,
        filters=body.filters,
        rerank=body.rerank,
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        caller=await metered_caller(request.app, principal),
    )
    if not (body.stream and body.generate):
        return await rag.query(**args, generate=body.generate)
    result, answer = await rag.query_stream(**args)

    async def frames() -> AsyncIterator[bytes]:
        head = {"sources": [s.model_dump() for s in result.sources], "mode": result.mode}
        yield frame(head, event="sources")
        try:
            async for event in answer:
                yield frame(event, event="done" if "answer" in event else "delta")
        except HearthError as exc:
            yield frame(exc.body(), event="error")

    # However the response ends (even a client gone before the first frame), the answer's chat stream closes.
    return SSEResponse(frames(), on_close=answer.aclose)  # type: ignore[attr-defined]
