"""State shared by replicas through Redis/Valkey (`HEARTH_REDIS_URL`): one client per process, atomic scripts,
and broadcast channels.

What lives here is what every replica must agree on at once: rate-limit buckets (auth/shared_limits.py) and
the news that a key was revoked or a user disabled (auth/service.py drops cached keys on it). A channel
message can be lost while a replica is disconnected, so a listener that (re)subscribes is told to forget
everything it cached (`on_reset`): it reads from the database again instead of trusting what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import redis.asyncio as redis

from hearth.platform.kit.tasks import cancelled

log = logging.getLogger("hearth.shared")

# Commands the hot path sends fail fast: a slow Redis must not hold requests (callers fall back).
COMMAND_TIMEOUT = 1.0


class SharedState:
    """The process's Redis client, key naming under `prefix`, and channel listeners."""

    def __init__(self, url: str, *, prefix: str = "hearth") -> None:
        self.url = url
        self.prefix = prefix
        self.client = redis.Redis.from_url(
            url, socket_timeout=COMMAND_TIMEOUT, socket_connect_timeout=COMMAND_TIMEOUT
        )
        # Subscriptions wait on their socket indefinitely (a timeout would break them); PINGs every few
        # seconds find a connection that died silently, and the listener then resubscribes and resets.
        self._subscriber = redis.Redis.from_url(
            url, socket_connect_timeout=COMMAND_TIMEOUT, health_check_interval=5
        )
        self._listeners: list[asyncio.Task[None]] = []
        self._warned_at = 0.0

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def channel(self, name: str) -> str:
        return self.key("channel", name)

    async def publish(self, name: str, message: str) -> bool:
        """Send `message` on channel `name`; False (logged) when Redis cannot be reached."""
        try:
            await self.client.publish(self.channel(name), message)
            return True
        except (redis.RedisError, OSError):
            self.warn("could not publish on %s", name)
            return False

    def listen(
        self, name: str, handler: Callable[[str], None], *, on_reset: Callable[[], None] | None = None
    ) -> None:
        """Call `handler(message)` for every message on channel `name`, in this process, from now until
        `close`; `on_reset()` after every (re)subscription, since messages sent meanwhile were missed."""
        task = asyncio.create_task(self._listen(name, handler, on_reset), name=f"shared-listen-{name}")
        self._listeners.append(task)

    async def _listen(
        self, name: str, handler: Callable[[str], None], on_reset: Callable[[], None] | None
    ) -> None:
        delay = 0.2
        while True:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel(name))
                if on_reset is not None:
                    on_reset()
                delay = 0.2
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None or message.get("type") != "message":
                        continue
                    data = message["data"]
                    try:
                        handler(data.decode() if isinstance(data, bytes) else str(data))
                    except Exception:
                        log.exception("handler for channel %s failed", name)
            except asyncio.CancelledError:
                raise
            except (redis.RedisError, OSError):
                self.warn("subscription to %s lost; resubscribing", name)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def warn(self, message: str, *args: object) -> None:
        """Log a Redis problem at most every 30 s (a Redis outage would otherwise log per request)."""
        now = time.monotonic()
        if now - self._warned_at >= 30.0:
            self._warned_at = now
            log.warning("redis %s: " + message, self.url.split("@")[-1], *args, exc_info=True)

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (redis.RedisError, OSError):
            return False

    async def close(self) -> None:
        for task in self._listeners:
            await cancelled(task)
        self._listeners.clear()
        for client in (self.client, self._subscriber):
            with contextlib.suppress(Exception):
                await client.aclose()
