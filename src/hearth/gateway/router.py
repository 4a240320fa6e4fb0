"""Alias → deployment routing: ordered priority groups, least-busy choice within a group, retries with
backoff, fallback to the next deployment, cooldown of failing ones, and per-deployment slots."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from hearth.gateway.backends.base import BackendError
from hearth.gateway.deployment import Deployment
from hearth.gateway.limiter import SlotTimeout
from hearth.platform import metrics
from hearth.platform.errors import HearthError

log = logging.getLogger("hearth.gateway")
T = TypeVar("T")

MAX_BACKOFF = 2.0
MAX_HONOURED_RETRY_AFTER = 5.0


@dataclass
class Alias:
    name: str
    kind: str  # chat | embedding | rerank | transcription | speech
    description: str
    groups: list[list[Deployment]]  # by ascending priority; members of a group share load


@dataclass(frozen=True, slots=True)
class Served:
    """Which deployment answered a call and, when it was not one of the alias's primaries, why: sent to
    clients as the `x-hearth-deployment` and `x-hearth-fallback` headers."""

    deployment: str
    fallback: str | None = None  # None: a primary answered; else what happened to the primaries

    def headers(self) -> dict[str, str]:
        headers = {"x-hearth-deployment": _header_value(self.deployment)}
        headers["x-hearth-fallback"] = "true" if self.fallback else "false"
        if self.fallback:
            headers["x-hearth-fallback-reason"] = _header_value(self.fallback)
        return headers


def _header_value(text: str, limit: int = 300) -> str:
    # Header values are Latin-1 on the wire and must not break the line: keep printable ASCII.
    clean = "".join(c if " " <= c <= "~" else " " for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


@dataclass
class Routed(Generic[T]):
    result: T
    deployment: Deployment
    release: Callable[[], None]  # frees the slot; already called unless hold=True
    served: Served | None = None


class Router:
    def __init__(self, aliases: dict[str, Alias]) -> None:
        self.aliases = aliases

    def get(self, name: str, kind: str) -> Alias:
        alias = self.aliases.get(name)
        if alias is None:
            raise HearthError(
                404,
                f"The model '{name}' does not exist. Call GET /v1/models for the list.",
                param="model",
                code="model_not_found",
            )
        if alias.kind != kind:
            raise HearthError(
                400,
                f"The model '{name}' is a {alias.kind} model, not a {kind} model.",
                param="model",
                code="wrong_model_kind",
            )
        return alias

    def plan(self, alias: Alias) -> list[Deployment]:
        """Deployments in the order to try: healthy ones by group and load; cooling ones last, as a
        last resort, soonest-recovering first, so a lone deployment is still probed after a blip."""
        now = time.monotonic()
        healthy: list[Deployment] = []
        cooling: list[Deployment] = []
        for group in alias.groups:
            ready = [d for d in group if not d.cooling(now)]
            if len(ready) > 1:
                random.shuffle(ready)  # ties between equally loaded deployments are broken at random
                ready.sort(key=lambda d: d.load)
            healthy.extend(ready)
            cooling.extend(d for d in group if d.cooling(now))
        cooling.sort(key=lambda d: d.cooldown_until)
        return healthy + cooling

    async def execute(
        self,
        alias: Alias,
        call: Callable[[Deployment], Awaitable[T]],
        *,
        priority: str = "standard",
        hold: bool = False,
    ) -> Routed[T]:
        """Run `call` on the best deployment, retrying and falling back as configured. With `hold`, the
        slot stays taken after success (for streams) and the caller must call `release`."""
        errors: list[str] = []
        retry_after_hint: float | None = None
        for deployment in self.plan(alias):
            cfg = deployment.config
            for attempt in range(cfg.max_retries + 1):
                try:
                    await deployment.limiter.acquire(priority, timeout=cfg.timeout)
                except SlotTimeout:
                    errors.append(f"{deployment.key}: no free slot within {cfg.timeout:g}s")
                    break
                released = False

                def release(d: Deployment = deployment) -> None:
                    nonlocal released
                    if not released:
                        released = True
                        d.limiter.release()

                try:
                    async with asyncio.timeout(cfg.timeout):
                        result = await call(deployment)
                except BackendError as exc:
                    release()
                    if not exc.retryable:
                        raise
                    error = exc.message
                    if exc.retry_after is not None:
                        retry_after_hint = exc.retry_after
                except TimeoutError:
                    release()
                    error = f"timed out after {cfg.timeout:g}s"
                except BaseException:
                    release()
                    raise
                else:
                    deployment.record_success()
                    metrics.ATTEMPTS.labels(deployment.key, "ok").inc()
                    if not hold:
                        release()
                    served = Served(deployment.key, _fallback_reason(alias, deployment, errors))
                    if served.fallback:
                        log.warning(
                            "fallback answered",
                            extra={
                                "alias": alias.name,
                                "deployment": deployment.key,
                                "reason": served.fallback,
                            },
                        )
                    return Routed(result, deployment, release, served)

                errors.append(f"{deployment.key}: {error}")
                log.warning(
                    "deployment failed",
                    extra={
                        "alias": alias.name,
                        "deployment": deployment.key,
                        "attempt": attempt + 1,
                        "error": error,
                    },
                )
                if deployment.record_failure(error):
                    metrics.COOLDOWNS.labels(deployment.key).inc()
                    metrics.ATTEMPTS.labels(deployment.key, "error").inc()
                    break  # cooled down: fall back to the next deployment now
                if attempt < cfg.max_retries:
                    metrics.ATTEMPTS.labels(deployment.key, "retry").inc()
                    await asyncio.sleep(_backoff(attempt, retry_after_hint))
                else:
                    metrics.ATTEMPTS.labels(deployment.key, "error").inc()
        headers = {"Retry-After": str(max(1, round(retry_after_hint)))} if retry_after_hint else None
        raise HearthError(
            503,
            f"No deployment of '{alias.name}' could answer: " + "; ".join(errors[-4:]),
            code="no_deployment_available",
            headers=headers,
        )


def _fallback_reason(alias: Alias, served_by: Deployment, errors: list[str]) -> str | None:
    """None when a primary (a member of the alias's first priority group) answered; else why none did:
    the errors of this call, or the cooldown that made routing skip the primaries without trying them."""
    primaries = alias.groups[0] if alias.groups else []
    if served_by in primaries:
        return None
    if errors:
        return "; ".join(errors[-3:])
    now = time.monotonic()
    skipped = [
        f"{d.key} cooling down for {d.cooldown_until - now:.0f}s after: {d.last_error or 'errors'}"
        for d in primaries
        if d.cooling(now)
    ]
    return "; ".join(skipped) or "the primary deployments were busy"


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None and retry_after <= MAX_HONOURED_RETRY_AFTER:
        return retry_after
    base = min(MAX_BACKOFF, 0.05 * (2**attempt))
    return base * (0.5 + random.random() / 2)
