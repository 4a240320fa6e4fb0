"""OpenAI-compatible routes under /v1. Thin: check the request, call the gateway, shape the reply."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Annotated, Any, TypeVar

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from hearth.auth.deps import CurrentUser
from hearth.gateway.catalogue import alias_card
from hearth.gateway.router import Alias
from hearth.gateway.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    EmbeddingList,
    EmbeddingRequest,
    ModelCard,
    ModelList,
    RerankRequest,
    RerankResponse,
)
from hearth.gateway.service import Gateway, metered_caller
from hearth.platform.errors import HearthError, invalid
from hearth.platform.kit.openapi import MODEL_ERRORS, errors, event_stream, json_body
from hearth.platform.kit.sse import SSEResponse

router = APIRouter(prefix="/v1", tags=["openai"])
M = TypeVar("M", bound=BaseModel)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


async def _parse(request: Request, model: type[M]) -> tuple[dict[str, Any], M]:
    raw = await request.body()
    if not raw:
        raise HearthError(400, "request body is empty; send a JSON object", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise HearthError(400, "request body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise HearthError(400, "request body must be a JSON object", code="invalid_json")
    try:
        return data, model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc.errors()) from None


async def _gateway(request: Request) -> Gateway:
    # async: FastAPI would run a plain function in its thread pool, on every /v1 request.
    return request.app.state.platform.gateway


# The platform owns the gateway (it serves every context), so routes reach it there, not through a port.
Gw = Annotated[Gateway, Depends(_gateway)]


@router.get("/models", response_model=ModelList)
async def list_models(_: CurrentUser, gateway: Gw) -> Response:
    """The aliases, each with its deployments' real models, engines, health and the one serving now."""
    return _json({"object": "list", "data": gateway.describe()})


@router.get("/models/{model_id:path}", response_model=ModelCard)
async def get_model(model_id: str, _: CurrentUser, gateway: Gw) -> Response:
    alias = gateway.aliases.get(model_id)
    if alias is None:
        raise HearthError(
            404, f"The model '{model_id}' does not exist.", param="model", code="model_not_found"
        )
    return _json(_model_card(gateway, alias))


def _model_card(gateway: Gateway, alias: Alias) -> dict[str, Any]:
    return alias_card(alias, gateway.config.backends, gateway.serving(alias))


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    openapi_extra=json_body(ChatCompletionRequest),
    responses={**errors(*MODEL_ERRORS), **event_stream()},
)
async def chat_completions(request: Request, principal: CurrentUser, gateway: Gw) -> Response:
    body, parsed = await _parse(request, ChatCompletionRequest)
    caller = await metered_caller(request.app, principal)
    if not parsed.stream:
        response, served = await gateway.chat_served(body, caller)
        return _json(response, headers=served.headers())
    stream = await gateway.chat_stream(body, caller)
    # Closed however the response ends, even when the client hangs up before the first chunk is read, so
    # its deployment slot is never leaked. The headers name the deployment that produced the first chunk,
    # which produces the whole stream (routing ends there; see docs/gateway.md "Fallback headers").
    response = SSEResponse(stream.sse(end=b"[DONE]"), on_close=stream.aclose)
    response.headers.update(stream.served.headers())
    return response


# Inputs past these are refused (400), not embedded: an embedding model reads a bounded window (the
# embedded MiniLM 256 word pieces, OpenAI's 8,192 tokens), so a 2M-character input was tokenized in full
# for a vector of its first few hundred words. Within the limit, what the model cannot read is cut by it.
MAX_EMBEDDING_INPUT_CHARS = 32_768
MAX_EMBEDDING_REQUEST_CHARS = 1_048_576


def _check_embedding_sizes(texts: list[str]) -> None:
    for i, text in enumerate(texts):
        if len(text) > MAX_EMBEDDING_INPUT_CHARS:
            raise HearthError(
                400,
                f"input[{i}] has {len(text)} characters; at most {MAX_EMBEDDING_INPUT_CHARS} per input: "
                "split the text into chunks",
                param="input",
                code="input_too_long",
            )
    total = sum(len(t) for t in texts)
    if total > MAX_EMBEDDING_REQUEST_CHARS:
        raise HearthError(
            400,
            f"the inputs have {total} characters in all; at most {MAX_EMBEDDING_REQUEST_CHARS} per request: "
            "send them in several requests",
            param="input",
            code="input_too_long",
        )


@router.post(
    "/embeddings",
    response_model=EmbeddingList,
    openapi_extra=json_body(EmbeddingRequest),
    responses=errors(*MODEL_ERRORS),
)
async def embeddings(request: Request, principal: CurrentUser, gateway: Gw) -> Response:
    _, parsed = await _parse(request, EmbeddingRequest)
    texts = [parsed.input] if isinstance(parsed.input, str) else parsed.input
    _check_embedding_sizes(texts)
    result = await gateway.embed(parsed.model, texts, await metered_caller(request.app, principal))
    vectors = result.vectors
    if parsed.dimensions is not None and vectors and parsed.dimensions != len(vectors[0]):
        raise HearthError(
            400,
            f"'{parsed.model}' produces {len(vectors[0])}-dimensional vectors; "
            f"dimensions={parsed.dimensions} is not supported",
            param="dimensions",
        )
    data = []
    for i, vector in enumerate(vectors):
        if parsed.encoding_format == "base64":
            encoded: Any = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
        else:
            encoded = vector.tolist() if isinstance(vector, np.ndarray) else vector
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    return _json(
        {"object": "list", "data": data, "model": parsed.model, "usage": usage}, headers=_served(result)
    )


@router.post(
    "/rerank",
    response_model=RerankResponse,
    openapi_extra=json_body(RerankRequest),
    responses=errors(*MODEL_ERRORS),
)
async def rerank(request: Request, principal: CurrentUser, gateway: Gw) -> Response:
    _, parsed = await _parse(request, RerankRequest)
    texts = parsed.texts()
    caller = await metered_caller(request.app, principal)
    result = await gateway.rerank(parsed.model, parsed.query, texts, caller)
    order = sorted(range(len(texts)), key=lambda i: result.scores[i], reverse=True)
    if parsed.top_n is not None:
        order = order[: parsed.top_n]
    results = []
    for i in order:
        row: dict[str, Any] = {"index": i, "relevance_score": result.scores[i]}
        if parsed.return_documents:
            row["document"] = {"text": texts[i]}
        results.append(row)
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    return _json(
        {
            "id": f"rerank-{uuid.uuid4().hex}",
            "model": parsed.model,
            "results": results,
            "usage": usage,
            "created": int(time.time()),
        },
        headers=_served(result),
    )


def _served(result: Any) -> dict[str, str] | None:
    return result.served.headers() if result.served is not None else None
