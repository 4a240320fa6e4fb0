"""What replicas share through the real Redis (platform/shared.py): one request and token budget per key
across limiters (auth/shared_limits.py), the in-process fallback while Redis is unreachable, and a disabled
user or revoked key dropped from another replica's key cache at once."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from hearth.auth.principal import Principal
from hearth.auth.ratelimit import RateLimiter
from hearth.auth.service import AuthService
from hearth.auth.shared_limits import SharedRateLimiter
from hearth.platform.db import Database
from hearth.platform.errors import HearthError
from hearth.platform.shared import SharedState
from tests.conftest import REDIS_URL
from tests.helpers import wait_for


def _principal(key_id: str, *, rpm: int | None = None, tpm: int | None = None) -> Principal:
    return Principal(
        user_id="u1",
        username="u",
        role="user",
        key_id=key_id,
        priority="standard",
        rpm_limit=rpm,
        tpm_limit=tpm,
    )


async def _admitted(limiter: SharedRateLimiter, principal: Principal, times: int) -> int:
    admitted = 0
    for _ in range(times):
        try:
            await limiter.admit(principal)
            admitted += 1
        except HearthError as exc:
            assert exc.status == 429 and int(exc.headers["Retry-After"]) >= 1
    return admitted


@pytest.fixture
async def replicas() -> list[SharedState]:
    """Two replicas' connections to Redis under one fresh prefix (fails, never skips, if Redis is down)."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    states = [SharedState(REDIS_URL, prefix=prefix) for _ in range(2)]
    assert await states[0].ping(), "Redis is not reachable"
    yield states
    keys = [k async for k in states[0].client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await states[0].client.delete(*keys)
    for state in states:
        await state.close()


async def test_two_replicas_share_one_request_budget(replicas: list[SharedState]) -> None:
    a, b = (SharedRateLimiter(state, RateLimiter()) for state in replicas)
    key = _principal("k-rpm", rpm=10)
    # Alternating, as a load balancer would send them: 10 in all, not 10 each.
    admitted = 0
    for _ in range(10):
        admitted += await _admitted(a, key, 1) + await _admitted(b, key, 1)
    assert admitted == 10
    assert await _admitted(a, _principal("another-key", rpm=10), 1) == 1  # budgets are per key


async def test_tokens_charged_on_one_replica_count_on_the_other(replicas: list[SharedState]) -> None:
    a, b = (SharedRateLimiter(state, RateLimiter()) for state in replicas)
    key = _principal("k-tpm", tpm=100)
    await a.admit(key)
    a.add_tokens(key, 60)
    a.add_tokens(key, 60)  # summed and sent in the background
    await a.close()
    with pytest.raises(HearthError) as refused:
        await b.admit(key)
    assert refused.value.status == 429 and "token rate limit" in refused.value.message


async def test_limits_fall_back_to_this_replica_while_redis_is_away() -> None:
    away = SharedState("redis://127.0.0.1:1/0")  # nothing listens there
    limiter = SharedRateLimiter(away, RateLimiter())
    try:
        assert await _admitted(limiter, _principal("k-away", rpm=3), 5) == 3  # the in-process bucket
    finally:
        await away.close()


async def test_a_disabled_user_and_a_revoked_key_leave_every_replicas_cache(
    database: Database, replicas: list[SharedState]
) -> None:
    first, second = AuthService(database, cache_seconds=60), AuthService(database, cache_seconds=60)
    first.share_invalidations(replicas[0])
    second.share_invalidations(replicas[1])
    await asyncio.sleep(0.2)  # both listeners subscribed
    user = await first.create_user(username="moved")
    row, token = await first.create_key(user_id=user.id)
    _other_row, other = await first.create_key(user_id=user.id)
    assert await second.authenticate(token) is not None  # cached for 60 s on the second replica

    await first.set_user_disabled(user_id=user.id)
    await wait_for(lambda: not second._cache, 1.0, what="the disabled user's key dropped by the replica")
    assert await second.authenticate(token) is None  # (remembered as a miss)

    await first.set_user_disabled(user_id=user.id, disabled=False)
    await wait_for(lambda: not second._cache, 1.0, what="the re-enabled user's miss dropped by the replica")
    assert await second.authenticate(token) is not None
    assert await second.authenticate(other) is not None
    assert len(second._cache) == 2  # both keys cached there again
    await first.revoke_key(key_id=row.id)
    await wait_for(lambda: len(second._cache) == 1, 1.0, what="the revoked key dropped by the other replica")
    assert await second.authenticate(token) is None
    assert await second.authenticate(other) is not None  # the user's other key still works
