"""The gateway's logic: resolve an alias, route the call, account tokens and time, publish events.

Every application in Hearth (chat, RAG, agents, tips) calls models through this one object."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from hearth.auth.principal import Principal
from hearth.config import ModelsConfig
from hearth.gateway.backends.base import (
    Backend,
    BackendError,
    EmbeddingResult,
    RequestTooLarge,
    RerankResult,
    SpeechRequest,
    Transcription,
    TranscriptionRequest,
    Warmable,
)
from hearth.gateway.catalogue import alias_card, alias_status
from hearth.gateway.deployment import Deployment
from hearth.gateway.events import InferenceCompleted, InferenceFailed
from hearth.gateway.loops import trim_loop
from hearth.gateway.registry import build_aliases, build_backends
from hearth.gateway.router import Alias, Routed, Router, Served
from hearth.gateway.speech import SpeechStream
from hearth.gateway.stream import ChatStream, one_by_one
from hearth.gateway.telemetry import EventBatcher
from hearth.platform import metrics
from hearth.platform.errors import HearthError
from hearth.platform.logging import request_id_var

log = logging.getLogger("hearth.gateway")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a gateway call is for: drives queue priority, accounting and events."""

    user_id: str = "system"
    key_id: str | None = None  # the API key the call came in with (usage is accounted per key)
    priority: str = "standard"
    request_id: str = ""
    on_tokens: Callable[[int], None] | None = None  # charged with the tokens used (rate limits)


SYSTEM = Caller()


async def _with_first_item(stream: AsyncGenerator[T, None]) -> tuple[AsyncGenerator[T, None], T | None]:
    """Read a stream's first item inside routing, so a deployment that fails before its first byte can still
    be retried or replaced; a stream that fails there is closed."""
    try:
        return stream, await anext(stream)
    except StopAsyncIteration:
        return stream, None
    except BaseException:
        await stream.aclose()
        raise


def _chat_batches(backend: Any, body: dict[str, Any], model: str | None) -> AsyncGenerator[list[Any], None]:
    """A backend's stream as lists of chunks: its own batches when it reads a socket, else one by one."""
    batches = getattr(backend, "chat_stream_batches", None)
    if batches is not None:
        return batches(body, model)
    return one_by_one(backend.chat_stream(body, model))


async def metered_caller(app: Any, principal: Principal, *, request_id: str | None = None) -> Caller:
    """A Caller for an API request: checks the key's request budget now (429) and charges its token budget
    as tokens are used. Every route that calls models on a user's behalf builds its Caller here. (Async: with
    Redis the budget is shared by every replica, auth/shared_limits.py.)"""
    limiter = app.state.platform.ratelimits
    await limiter.admit(principal)
    return Caller(
        user_id=principal.user_id,
        key_id=principal.key_id,
        priority=principal.priority,
        request_id=request_id if request_id is not None else (request_id_var.get() or ""),
        on_tokens=lambda n: limiter.add_tokens(principal, n),
    )


class Gateway:
    def __init__(
        self, models: ModelsConfig, *, llm_threads: int = 1, bus: Any = None, request_events: bool = False
    ) -> None:
        self.config = models
        self.llm_threads = llm_threads
        self.backends: dict[str, Backend] = build_backends(models, llm_threads=llm_threads)
        self.router = Router(build_aliases(models, self.backends))
        # With a bus, usage is always published (summed); per-request events only with `request_events`.
        self.events = EventBatcher(bus, per_request=request_events) if bus is not None else None
        self.ready = False
        self._reconfiguring = asyncio.Lock()

    @property
    def aliases(self) -> dict[str, Alias]:
        return self.router.aliases

    # -- aliases at run time (gateway.ports.AliasRegistry) --------------------------------------------------

    def has_alias(self, name: str) -> bool:
        return name in self.router.aliases

    async def add_alias(
        self, name: str, *, base_url: str, model: str, kind: str = "chat", description: str = ""
    ) -> None:
        """Route `name` to the OpenAI-compatible server at base_url (its own backend `alias-<name>`)."""
        if self.has_alias(name):
            raise ValueError(f"alias {name!r} already exists in the gateway")
        raw = self.config.model_dump(exclude_unset=True)
        backend_name = f"alias-{name}"
        raw.setdefault("backends", {})[backend_name] = {"type": "openai", "base_url": base_url}
        raw.setdefault("aliases", {})[name] = {
            "kind": kind,
            "description": description,
            "deployments": [{"backend": backend_name, "model": model}],
        }
        await self.reconfigure(ModelsConfig.model_validate(raw))

    async def remove_alias(self, name: str) -> None:
        if name not in self.router.aliases:
            return
        raw = self.config.model_dump(exclude_unset=True)
        raw.get("aliases", {}).pop(name, None)
        raw.get("backends", {}).pop(f"alias-{name}", None)  # the backend add_alias made for it
        await self.reconfigure(ModelsConfig.model_validate(raw))

    async def reconfigure(self, models: ModelsConfig) -> None:
        """Serve `models` from now on. Backends whose configuration did not change keep running (a loaded
        model is not loaded again), and so do deployments, with their health and slots; new backends start
        before anything is swapped, so a backend that cannot start (ValueError) leaves the gateway as it was.
        Requests in flight finish on the objects they started with; backends no longer used are closed."""
        async with self._reconfiguring:
            old_backends = self.backends
            reuse = {
                name: backend
                for name, backend in old_backends.items()
                if name in models.backends and models.backends[name] == self.config.backends.get(name)
            }
            backends = build_backends(models, llm_threads=self.llm_threads, reuse=reuse)
            fresh = [b for name, b in backends.items() if reuse.get(name) is not b]
            results = await asyncio.gather(*(b.start() for b in fresh), return_exceptions=True)
            failed = [(b, r) for b, r in zip(fresh, results, strict=True) if isinstance(r, BaseException)]
            if failed:
                await asyncio.gather(*(b.close() for b in fresh), return_exceptions=True)
                backend, error = failed[0]
                message = error.message if isinstance(error, BackendError) else str(error)
                raise ValueError(f"backend {backend.name!r} cannot start: {message}")
            previous = {(d.backend, d.model): d for a in self.aliases.values() for g in a.groups for d in g}
            self.router.aliases = build_aliases(models, backends, previous=previous)
            self.backends = backends
            self.config = models
            kept = {id(b) for b in backends.values()}
            gone = [b for b in old_backends.values() if id(b) not in kept]
            await asyncio.gather(*(b.close() for b in gone), return_exceptions=True)

    def describe(self) -> list[dict[str, Any]]:
        return [alias_card(a, self.config.backends, self.serving(a)) for a in self.aliases.values()]

    def troubled_aliases(self) -> dict[str, dict[str, Any]]:
        """Aliases that are degraded (a primary cooling down or failing) or down (every deployment cooling
        down): their status, why, and the deployment that serves them now."""
        out: dict[str, dict[str, Any]] = {}
        for alias in self.aliases.values():
            status, detail = alias_status(alias)
            if status != "ok":
                serving = self.serving(alias)
                out[alias.name] = {
                    "status": status,
                    "detail": detail,
                    "serving": serving.key if serving is not None else None,
                }
        return out

    def serving(self, alias: Alias) -> Deployment | None:
        """The deployment a request for `alias` would try first right now."""
        plan = self.router.plan(alias)
        return plan[0] if plan else None

    def warm_up(self, alias_name: str) -> None:
        """Start loading the lazily loaded models behind `alias_name` in the background."""
        alias = self.router.aliases.get(alias_name)
        for group in alias.groups if alias else ():
            for deployment in group:
                if isinstance(deployment.backend, Warmable):
                    deployment.backend.warm()

    async def start(self) -> None:
        await asyncio.gather(*(b.start() for b in self.backends.values()))
        if self.events:
            self.events.start()
        self.ready = True

    async def close(self) -> None:
        self.ready = False
        if self.events:
            await self.events.stop()
        await asyncio.gather(*(b.close() for b in self.backends.values()), return_exceptions=True)

    # -- chat -------------------------------------------------------------------------------------------

    async def chat(self, body: dict[str, Any], caller: Caller = SYSTEM) -> dict[str, Any]:
        """A whole chat completion for `body["model"]` (an alias)."""
        return (await self.chat_served(body, caller))[0]

    async def chat_served(
        self, body: dict[str, Any], caller: Caller = SYSTEM
    ) -> tuple[dict[str, Any], Served]:
        """A whole chat completion, and which deployment answered it (a fallback or not)."""
        alias = self.router.get(body["model"], "chat")
        started = time.perf_counter()
        routed = await self._route(alias, lambda d: d.backend.chat(body, d.model), caller, started)
        response = routed.result
        response["model"] = body["model"]  # the alias asked for, as in streamed chunks
        if self._watch_loops(routed.deployment):
            _stop_loops(response)
        usage = response.get("usage") or {}
        self._completed(
            alias,
            routed.deployment,
            caller,
            started,
            None,
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
        )
        return response, _served(routed)

    async def chat_stream(self, body: dict[str, Any], caller: Caller = SYSTEM) -> ChatStream:
        """Open a streamed chat completion. Routing (retries, fallback) happens before this returns, so a
        deployment failing before its first chunk is replaced by the next one; chunks then pass through as
        they arrive. Closing the returned stream (read or not) stops generation and frees the slot."""
        alias = self.router.get(body["model"], "chat")
        started = time.perf_counter()

        routed = await self._route(
            alias,
            lambda d: _with_first_item(_chat_batches(d.backend, body, d.model)),
            caller,
            started,
            hold=True,
        )
        stream, first = routed.result
        deployment = routed.deployment

        def finish(status: int, ttft: float | None, prompt_tokens: int, completion_tokens: int) -> None:
            self._completed(
                alias, deployment, caller, started, ttft, prompt_tokens, completion_tokens, status
            )

        return ChatStream(
            deployment,
            routed.release,
            stream,
            first,
            started,
            finish,
            model=body["model"],
            served=_served(routed),
            watch_loops=self._watch_loops(deployment),
        )

    def _watch_loops(self, deployment: Deployment) -> bool:
        """Whether the gateway stops this deployment's looping replies (embedded engines stop their own)."""
        config = self.config.backends.get(deployment.config.backend)
        own = getattr(deployment.backend, "detects_loops", False)
        return bool(config is not None and config.stop_loops and not own)

    # -- embeddings and rerank --------------------------------------------------------------------------

    async def embed(self, alias_name: str, texts: list[str], caller: Caller = SYSTEM) -> EmbeddingResult:
        """Vectors for `texts`, in order."""
        alias = self.router.get(alias_name, "embedding")
        started = time.perf_counter()
        routed = await self._route(alias, lambda d: d.backend.embed(texts, d.model), caller, started)
        self._completed(alias, routed.deployment, caller, started, None, routed.result.prompt_tokens, 0)
        routed.result.served = _served(routed)
        return routed.result

    async def rerank(
        self, alias_name: str, query: str, documents: list[str], caller: Caller = SYSTEM
    ) -> RerankResult:
        """Relevance scores of `documents` for `query`, in input order."""
        alias = self.router.get(alias_name, "rerank")
        started = time.perf_counter()
        routed = await self._route(
            alias, lambda d: d.backend.rerank(query, documents, d.model), caller, started
        )
        self._completed(alias, routed.deployment, caller, started, None, routed.result.prompt_tokens, 0)
        routed.result.served = _served(routed)
        return routed.result

    # -- speech -----------------------------------------------------------------------------------------

    async def transcribe(
        self, alias_name: str, request: TranscriptionRequest, caller: Caller = SYSTEM
    ) -> Transcription:
        """The text spoken in `request.file`."""
        alias = self.router.get(alias_name, "transcription")
        started = time.perf_counter()
        routed = await self._route(alias, lambda d: d.backend.transcribe(request, d.model), caller, started)
        self._completed(alias, routed.deployment, caller, started, None, 0, 0)
        return routed.result

    async def speech(self, alias_name: str, request: SpeechRequest, caller: Caller = SYSTEM) -> SpeechStream:
        """Open a stream of synthesized audio in `request.response_format`. Like chat_stream, routing
        happens before the first chunk; closing the stream stops synthesis and frees the slot."""
        alias = self.router.get(alias_name, "speech")
        started = time.perf_counter()

        routed = await self._route(
            alias,
            lambda d: _with_first_item(d.backend.speech(request, d.model)),  # type: ignore[attr-defined]
            caller,
            started,
            hold=True,
        )
        stream, first = routed.result
        deployment = routed.deployment

        def finish(status: int, ttfb: float | None) -> None:
            self._completed(alias, deployment, caller, started, ttfb, 0, 0, status)

        return SpeechStream(deployment, routed.release, stream, first, started, finish)

    async def _route(
        self,
        alias: Alias,
        call: Callable[[Deployment], Awaitable[T]],
        caller: Caller,
        started: float,
        *,
        hold: bool = False,
    ) -> Routed[T]:
        try:
            return await self.router.execute(alias, call, priority=caller.priority, hold=hold)
        except (HearthError, BackendError) as exc:
            raise self._failed(alias, caller, exc, started) from None

    # -- accounting -------------------------------------------------------------------------------------

    def _completed(
        self,
        alias: Alias,
        deployment: Deployment,
        caller: Caller,
        started: float,
        ttft: float | None,
        prompt_tokens: int,
        completion_tokens: int,
        status: int = 200,
    ) -> None:
        elapsed = time.perf_counter() - started
        metrics.REQUESTS.labels(alias.name, deployment.key, str(status)).inc()
        metrics.LATENCY.labels(alias.name, deployment.key).observe(elapsed)
        if ttft is not None:
            metrics.TTFT.labels(alias.name, deployment.key).observe(ttft)
        if prompt_tokens:
            metrics.TOKENS.labels(alias.name, deployment.key, "in").inc(prompt_tokens)
        if completion_tokens:
            metrics.TOKENS.labels(alias.name, deployment.key, "out").inc(completion_tokens)
        if caller.on_tokens is not None:
            caller.on_tokens(prompt_tokens + completion_tokens)
        events = self.events
        if events is not None:
            events.usage.add((caller.user_id, caller.key_id, alias.name), prompt_tokens, completion_tokens)
        if events is not None and events.per_request:
            events.emit(
                InferenceCompleted(
                    alias=alias.name,
                    deployment=deployment.key,
                    request_id=caller.request_id,
                    user_id=caller.user_id,
                    status=status,
                    latency_ms=round(elapsed * 1000, 3),
                    ttft_ms=round(ttft * 1000, 3) if ttft is not None else None,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                )
            )

    def _failed(
        self, alias: Alias, caller: Caller, exc: HearthError | BackendError, started: float
    ) -> HearthError:
        if isinstance(exc, BackendError):
            # A non-retryable upstream answer (the request itself is wrong): relay it as the client's error.
            error = HearthError(exc.status, exc.message, code=_code(exc))
        else:
            error = exc
        metrics.REQUESTS.labels(alias.name, "none", str(error.status)).inc()
        metrics.LATENCY.labels(alias.name, "none").observe(time.perf_counter() - started)
        events = self.events
        if events is not None:
            events.usage.add((caller.user_id, caller.key_id, alias.name), 0, 0, failed=True)
        if events is not None and events.per_request:
            events.emit(
                InferenceFailed(
                    alias=alias.name,
                    request_id=caller.request_id,
                    user_id=caller.user_id,
                    status=error.status,
                    error=error.message,
                )
            )
        return error

    def slot_usage(self) -> dict[str, tuple[int, int]]:
        """(queued, running) per deployment."""
        return {
            d.key: (d.limiter.queued, d.limiter.in_flight)
            for alias in self.aliases.values()
            for group in alias.groups
            for d in group
        }


def _stop_loops(response: dict[str, Any]) -> None:
    """Cut a whole reply that repeats itself after the first repeat, and say so (`stop_reason`)."""
    for choice in response.get("choices") or ():
        message = choice.get("message") or {}
        content = message.get("content")
        if isinstance(content, str):
            trimmed, looped = trim_loop(content)
            if looped:
                message["content"] = trimmed
                choice["finish_reason"] = "stop"
                choice["stop_reason"] = "repetition"


def _served(routed: Routed[Any]) -> Served:
    return routed.served or Served(routed.deployment.key)


def _code(exc: BackendError) -> str:
    if exc.body and isinstance(exc.body.get("error"), dict) and exc.body["error"].get("code"):
        return str(exc.body["error"]["code"])
    return "context_length_exceeded" if isinstance(exc, RequestTooLarge) else "upstream_rejected"
