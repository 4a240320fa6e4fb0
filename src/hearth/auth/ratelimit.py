"""Per-key request and token rate limits: two token buckets per key, O(1) per call.

`RateLimiter` keeps the buckets in this process's memory: right for one process. With `HEARTH_REDIS_URL`
set, `auth/shared_limits.py` keeps the same buckets in Redis, so several replicas behind a load balancer
enforce one limit together (and fall back to these in-process buckets while Redis is unreachable).
Routes call `admit` (async, either way) before a request and `add_tokens` after it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from hearth.auth.principal import Principal
from hearth.platform.errors import HearthError


class _Bucket:
    """A token bucket: `level` refills at capacity/60 per second up to `capacity`."""

    __slots__ = ("capacity", "level", "stamp")

    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = capacity
        self.level = float(capacity)
        self.stamp = now

    def refill(self, capacity: int, now: float) -> float:
        """Bring the level up to date and return it (a changed limit takes effect here)."""
        self.capacity = capacity
        elapsed = now - self.stamp
        if elapsed > 0:
            self.level = min(float(capacity), self.level + elapsed * capacity / 60.0)
        self.stamp = now
        return self.level

    def seconds_until(self, level: float) -> float:
        return (level - self.level) * 60.0 / self.capacity


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def refused(kind: str, limit: int, wait: float) -> HearthError:
    """The 429 for a key over its request ("requests") or token ("tokens") budget, retry in `wait` s."""
    allowance = f"make {limit} requests" if kind == "requests" else f"use {limit} tokens"
    what = "request" if kind == "requests" else "token"
    return HearthError(
        429,
        f"{what} rate limit exceeded: this key may {allowance} per minute; "
        f"retry in {max(1, math.ceil(wait))}s",
        code="rate_limit_exceeded",
        headers=_retry_after(wait),
    )


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits per API key; a key's own limits beat the defaults."""

    def __init__(
        self,
        *,
        default_rpm: int | None = None,
        default_tpm: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default_rpm = default_rpm
        self.default_tpm = default_tpm
        self._clock = clock
        self._requests: dict[str, _Bucket] = {}
        self._tokens: dict[str, _Bucket] = {}

    def limits(self, principal: Principal) -> tuple[int | None, int | None]:
        """The (rpm, tpm) that apply to this key; None means unlimited."""
        rpm = principal.rpm_limit if principal.rpm_limit is not None else self.default_rpm
        tpm = principal.tpm_limit if principal.tpm_limit is not None else self.default_tpm
        # Non-positive limits are treated as unset rather than as "refuse everything forever".
        return (rpm if rpm and rpm > 0 else None), (tpm if tpm and tpm > 0 else None)

    def check(self, principal: Principal) -> None:
        """Count one request, or raise HearthError 429 with Retry-After when the key is over a limit."""
        rpm, tpm = self.limits(principal)
        if rpm is None and tpm is None:
            return
        now = self._clock()
        key = principal.key_id
        # Tokens first: that check spends nothing, so a refusal there leaves the request budget intact.
        if tpm is not None:
            bucket = self._tokens.get(key)
            if bucket is not None and bucket.refill(tpm, now) <= 0:
                # Strictly positive is needed, so wait a hair past the moment it reaches zero.
                raise refused("tokens", tpm, bucket.seconds_until(0.0) + 1e-6)
        if rpm is not None:
            bucket = self._requests.get(key)
            if bucket is None:
                bucket = self._requests[key] = _Bucket(rpm, now)
            if bucket.refill(rpm, now) < 1.0:
                raise refused("requests", rpm, bucket.seconds_until(1.0))
            bucket.level -= 1.0

    async def admit(self, principal: Principal) -> None:
        """`check`, behind the interface the shared (Redis) limiter also offers."""
        self.check(principal)

    async def close(self) -> None:
        return None

    def add_tokens(self, principal: Principal, tokens: int) -> None:
        """Charge tokens used by a finished request to the key's token budget (it may go negative)."""
        if tokens <= 0:
            return
        _rpm, tpm = self.limits(principal)
        if tpm is None:
            return
        now = self._clock()
        bucket = self._tokens.get(principal.key_id)
        if bucket is None:
            bucket = self._tokens[principal.key_id] = _Bucket(tpm, now)
        bucket.refill(tpm, now)
        bucket.level -= tokens
