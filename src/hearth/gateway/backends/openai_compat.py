"""Any OpenAI-compatible server (Ollama, vLLM, LocalAI, LiteLLM, KServe…) as a backend, over httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from hearth.config import BackendConfig
from hearth.gateway.backends.base import BackendError, EmbeddingResult, RerankResult

# Upstream statuses that say the request itself is wrong: retrying or another deployment won't help.
_CLIENT_FAULT = {400, 413, 422}


class OpenAICompatBackend:
    def __init__(self, name: str, config: BackendConfig) -> None:
        self.name = name
        self.max_concurrency: int | None = None
        self.base_url = (config.base_url or "").rstrip("/")
        headers = {"Content-Type": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            # The router enforces the deployment's timeout on the whole call; this bounds connect and the
            # gap between streamed chunks.
            timeout=httpx.Timeout(connect=10.0, read=300.0, write=60.0, pool=300.0),
            limits=httpx.Limits(max_connections=config.max_connections,
                                max_keepalive_connections=config.max_connections),
        )

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self._client.aclose()

    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        try:
            response = await self._client.post(path, content=orjson.dumps(payload))
        except httpx.TransportError as exc:
            raise BackendError(f"cannot reach {self.base_url}: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise _upstream_error(response.status_code, response.content, response.headers)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise BackendError(f"{self.base_url}{path} answered with invalid JSON") from exc

    async def chat(self, body: dict[str, Any], model: str | None) -> dict[str, Any]:
        payload = dict(body, model=model or body["model"], stream=False)
        payload.pop("stream_options", None)
        return await self._post("/chat/completions", payload)

    async def chat_stream(self, body: dict[str, Any], model: str | None) -> AsyncIterator[dict[str, Any]]:
        # Always ask for usage so Hearth can count tokens; strip that chunk if the client didn't ask.
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        payload = dict(body, model=model or body["model"], stream=True,
                       stream_options={"include_usage": True})
        request = self._client.build_request("POST", "/chat/completions", content=orjson.dumps(payload))
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise BackendError(f"cannot reach {self.base_url}: {type(exc).__name__}") from exc
        try:
            if response.status_code != 200:
                await response.aread()
                raise _upstream_error(response.status_code, response.content, response.headers)
            try:
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    chunk = orjson.loads(data)
                    if "error" in chunk and "choices" not in chunk:
                        raise BackendError(f"upstream error mid-stream: {chunk['error']}", retryable=False)
                    if not wants_usage and not chunk.get("choices") and chunk.get("usage"):
                        chunk = {**chunk, "_usage_only": True}
                    yield chunk
            except httpx.TransportError as exc:
                raise BackendError(f"stream from {self.base_url} broke: {type(exc).__name__}") from exc
        finally:
            await response.aclose()

    async def embed(self, texts: list[str], model: str | None) -> EmbeddingResult:
        data = await self._post("/embeddings", {"model": model, "input": texts})
        try:
            rows = sorted(data["data"], key=lambda row: row["index"])
            vectors = [row["embedding"] for row in rows]
        except (KeyError, TypeError) as exc:
            raise BackendError(f"{self.base_url}/embeddings answered in an unexpected shape") from exc
        if len(vectors) != len(texts):
            raise BackendError(f"{self.base_url}/embeddings returned {len(vectors)} vectors for {len(texts)}")
        usage = data.get("usage") or {}
        return EmbeddingResult(vectors, int(usage.get("prompt_tokens") or 0), data.get("model") or model or "")

    async def rerank(self, query: str, documents: list[str], model: str | None) -> RerankResult:
        data = await self._post("/rerank", {"model": model, "query": query, "documents": documents})
        scores = [0.0] * len(documents)
        try:
            for row in data["results"]:
                scores[row["index"]] = float(row["relevance_score"])
        except (KeyError, TypeError, IndexError) as exc:
            raise BackendError(f"{self.base_url}/rerank answered in an unexpected shape") from exc
        usage = data.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
        return RerankResult(scores, tokens, data.get("model") or model or "")


def _upstream_error(status: int, content: bytes, headers: httpx.Headers) -> BackendError:
    body: dict[str, Any] | None = None
    message = content[:300].decode("utf-8", "replace")
    try:
        parsed = orjson.loads(content)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            body = parsed
            message = str(parsed["error"].get("message") or message)
        elif isinstance(parsed, dict) and "error" in parsed:
            message = str(parsed["error"])
    except orjson.JSONDecodeError:
        pass
    retry_after = None
    if status == 429 and headers.get("retry-after", "").replace(".", "", 1).isdigit():
        retry_after = float(headers["retry-after"])
    return BackendError(
        f"upstream answered {status}: {message}",
        status=status if status in _CLIENT_FAULT else 502,
        retryable=status not in _CLIENT_FAULT,
        retry_after=retry_after,
        body=body,
    )
