"""Per-key request and token limits shared by every replica: the token buckets of auth/ratelimit.py, kept in
Redis and changed only by atomic Lua scripts, so N replicas allow a key its limit once, not N times.

One round trip per request: the script refills both buckets from Redis's own clock (`TIME`: replicas'
clocks never enter the arithmetic), refuses when the token bucket is empty or the request bucket holds less
than one, and takes one request otherwise. Tokens used are charged after the response, summed per key and
sent in the background (one script call per key per event-loop turn), never on the request's path.

Keys: `<prefix>:rl:{<key id>}:r` (requests) and `:t` (tokens); the braces keep both in one cluster slot.
Each expires once its bucket would be full again (absent = full), so idle keys cost no memory.

While Redis cannot be reached the in-process buckets take over (logged every 30 s): limits then hold per
replica, as without Redis, rather than refusing every request or letting every request through.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as redis

from hearth.auth.principal import Principal
from hearth.auth.ratelimit import RateLimiter, refused
from hearth.platform.shared import SharedState

log = logging.getLogger("hearth.auth")

# A bucket refills `capacity` per 60 s up to `capacity`; stored as level `l` at time `s` (Redis seconds).
_LEVEL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function level(key, cap)
  local v = redis.call('HMGET', key, 'l', 's')
  local l, s = tonumber(v[1]), tonumber(v[2])
  if l == nil or s == nil then return cap end
  if now > s then l = math.min(cap, l + (now - s) * cap / 60) end
  return l
end
local function store(key, cap, l)
  redis.call('HSET', key, 'l', tostring(l), 's', tostring(now))
  redis.call('EXPIRE', key, math.ceil((cap - l) * 60 / cap) + 1)
end
"""

# KEYS: request bucket, token bucket. ARGV: rpm, tpm (0: no limit). Returns {0} admitted, or
# {1 | 2, wait}: refused by the request (1) or token (2) budget, wait seconds as a string.
ADMIT = (
    _LEVEL
    + """
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
if tpm > 0 then
  local l = level(KEYS[2], tpm)
  if l <= 0 then return {2, tostring(-l * 60 / tpm + 0.000001)} end
end
if rpm > 0 then
  local l = level(KEYS[1], rpm)
  if l < 1 then return {1, tostring((1 - l) * 60 / rpm)} end
  store(KEYS[1], rpm, l - 1)
end
return {0}
"""
)

# KEYS: token bucket. ARGV: tpm, tokens used. The level may go negative (a long answer overdraws).
CHARGE = (
    _LEVEL
    + """
local tpm = tonumber(ARGV[1])
store(KEYS[1], tpm, level(KEYS[1], tpm) - tonumber(ARGV[2]))
return 1
"""
)


class SharedRateLimiter:
    """The RateLimiter interface (`admit`, `add_tokens`, `limits`) over buckets in Redis."""

    def __init__(self, shared: SharedState, local: RateLimiter) -> None:
        self.shared = shared
        self.local = local  # the defaults, and the fallback while Redis is away
        self.default_rpm = local.default_rpm
        self.default_tpm = local.default_tpm
        self._admit = shared.client.register_script(ADMIT)
        self._charge = shared.client.register_script(CHARGE)
        self._owed: dict[str, tuple[Principal, int, int]] = {}  # key id → (caller, tpm, tokens) uncharged
        self._flushing: asyncio.Task[None] | None = None

    def limits(self, principal: Principal) -> tuple[int | None, int | None]:
        return self.local.limits(principal)

    def _keys(self, key_id: str) -> list[str]:
        base = self.shared.key("rl", "{" + key_id + "}")
        return [f"{base}:r", f"{base}:t"]

    async def admit(self, principal: Principal) -> None:
        """Count one request against the key's shared budget, or raise 429 with Retry-After."""
        rpm, tpm = self.limits(principal)
        if rpm is None and tpm is None:
            return
        try:
            verdict = await self._admit(keys=self._keys(principal.key_id), args=[rpm or 0, tpm or 0])
        except (redis.RedisError, OSError):
            self.shared.warn("rate limits fall back to this replica's buckets")
            self.local.check(principal)
            return
        if int(verdict[0]) == 1:
            raise refused("requests", rpm or 0, float(verdict[1]))
        if int(verdict[0]) == 2:
            raise refused("tokens", tpm or 0, float(verdict[1]))

    def check(self, principal: Principal) -> None:
        """The synchronous check of the in-process buckets only (kept for the RateLimiter interface)."""
        self.local.check(principal)

    def add_tokens(self, principal: Principal, tokens: int) -> None:
        """Charge tokens a finished request used; sent to Redis from a background task, summed per key."""
        if tokens <= 0:
            return
        _rpm, tpm = self.limits(principal)
        if tpm is None:
            return
        _caller, _limit, owed = self._owed.get(principal.key_id, (principal, tpm, 0))
        self._owed[principal.key_id] = (principal, tpm, owed + tokens)
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._owed:
                owed, self._owed = self._owed, {}
                for key_id, (caller, tpm, tokens) in owed.items():
                    try:
                        await self._charge(keys=self._keys(key_id)[1:], args=[tpm, tokens])
                    except (redis.RedisError, OSError):
                        self.shared.warn("could not charge tokens; charged on this replica only")
                        self.local.add_tokens(caller, tokens)
        finally:
            self._flushing = None

    async def close(self) -> None:
        """Send what is still owed (at shutdown)."""
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
