"""Chat and voice sessions: last activity and an expiry, in SQL (embedded default) or Redis/Valkey.

Both stores implement one small protocol and take `now` from the caller, so the service owns the clock and
tests can move it. A session idle for longer than `max_age` is gone: reads treat it as missing at once, and
the retention sweep (plus, in Redis, each key's TTL) removes it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from sqlalchemy import delete, select, update

from hearth.chat.events import SessionCreated
from hearth.chat.models import SessionRow
from hearth.events.bus import EventBus
from hearth.platform.db import Database, new_id, utcnow
from hearth.platform.errors import bad_request, not_found

KINDS = ("chat", "voice")


@dataclass(frozen=True)
class Session:
    id: str
    user_id: str
    kind: str
    started_at: datetime
    last_activity: datetime
    metadata: dict[str, Any] = field(default_factory=dict)


class SessionStore(Protocol):
    async def create(self, session: Session) -> None: ...

    async def get(self, *, user_id: str, session_id: str) -> Session | None: ...

    async def touch(self, *, user_id: str, session_id: str, now: datetime, cutoff: datetime) -> bool: ...

    async def list(self, *, user_id: str, cutoff: datetime) -> list[Session]: ...

    async def sweep(self, cutoff: datetime) -> int: ...

    async def forget_user(self, user_id: str) -> None: ...

    async def close(self) -> None: ...


class SqlSessionStore:
    """Sessions as rows of `chat_sessions`; SessionCreated commits with the row."""

    def __init__(self, db: Database, bus: EventBus | None = None) -> None:
        self.db = db
        self.bus = bus

    async def create(self, session: Session) -> None:
        """Insert the session (and its event, in the same transaction)."""
        async with self.db.transaction() as s:
            s.add(
                SessionRow(
                    id=session.id,
                    user_id=session.user_id,
                    kind=session.kind,
                    started_at=session.started_at,
                    last_activity=session.last_activity,
                    meta=session.metadata,
                )
            )
            if self.bus is not None:
                await self.bus.publish(_created(session), session=s)

    async def get(self, *, user_id: str, session_id: str) -> Session | None:
        """The user's session with this id, whatever its age."""
        async with self.db.sessions() as s:
            row = await s.scalar(
                select(SessionRow).where(SessionRow.id == session_id, SessionRow.user_id == user_id)
            )
            return _from_row(row) if row else None

    async def touch(self, *, user_id: str, session_id: str, now: datetime, cutoff: datetime) -> bool:
        """Move last activity to `now` if the session exists, is the user's and has not expired."""
        async with self.db.transaction() as s:
            result = await s.execute(
                update(SessionRow)
                .where(
                    SessionRow.id == session_id,
                    SessionRow.user_id == user_id,
                    SessionRow.last_activity >= cutoff,
                )
                .values(last_activity=now)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def list(self, *, user_id: str, cutoff: datetime) -> list[Session]:
        """The user's live sessions, most recently active first."""
        async with self.db.sessions() as s:
            rows = await s.scalars(
                select(SessionRow)
                .where(SessionRow.user_id == user_id, SessionRow.last_activity >= cutoff)
                .order_by(SessionRow.last_activity.desc())
            )
            return [_from_row(r) for r in rows]

    async def sweep(self, cutoff: datetime) -> int:
        """Delete sessions idle since before `cutoff`."""
        async with self.db.transaction() as s:
            result = await s.execute(delete(SessionRow).where(SessionRow.last_activity < cutoff))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def forget_user(self, user_id: str) -> None:
        """Delete every session of the user, live or expired (erasure)."""
        async with self.db.transaction() as s:
            await s.execute(delete(SessionRow).where(SessionRow.user_id == user_id))

    async def close(self) -> None:
        return None


def _from_row(row: SessionRow) -> Session:
    return Session(
        id=row.id,
        user_id=row.user_id,
        kind=row.kind,
        started_at=row.started_at,
        last_activity=row.last_activity,
        metadata=dict(row.meta or {}),
    )


def _created(session: Session) -> SessionCreated:
    return SessionCreated(session_id=session.id, user_id=session.user_id, kind=session.kind)


class RedisSessionStore:
    """Sessions as Redis hashes with a TTL, indexed by last activity per user and globally.

    Keys (under `prefix`): `session:<id>` (hash), `sessions:user:<user_id>` and `sessions:activity` (sorted
    sets scored by last activity, epoch seconds). The TTL lets Redis drop idle sessions by itself; the
    indexes are pruned by `list` and `sweep`. SessionCreated is published after the hash is written (Redis
    and the outbox share no transaction)."""

    def __init__(
        self, url: str, *, prefix: str = "hearth", max_age: timedelta, bus: EventBus | None = None
    ) -> None:
        import redis.asyncio as redis  # only needed when configured

        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix
        self.max_age = max_age
        self.bus = bus

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}:session:{session_id}"

    def _user_index(self, user_id: str) -> str:
        return f"{self.prefix}:sessions:user:{user_id}"

    @property
    def _activity_index(self) -> str:
        return f"{self.prefix}:sessions:activity"

    @property
    def _ttl(self) -> int:
        # Activity is always stamped "now" by the service's clock, so a fresh write lives a whole max_age.
        return max(1, int(self.max_age.total_seconds()))

    async def create(self, session: Session) -> None:
        """Write the session hash, its TTL and both index entries in one MULTI."""
        score = session.last_activity.timestamp()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._key(session.id),
                mapping={
                    "user_id": session.user_id,
                    "kind": session.kind,
                    "started_at": session.started_at.isoformat(),
                    "last_activity": repr(score),
                    "metadata": orjson.dumps(session.metadata),
                },
            )
            pipe.expire(self._key(session.id), self._ttl)
            pipe.zadd(self._user_index(session.user_id), {session.id: score})
            pipe.zadd(self._activity_index, {session.id: score})
            await pipe.execute()
        if self.bus is not None:
            await self.bus.publish(_created(session))

    async def get(self, *, user_id: str, session_id: str) -> Session | None:
        """The user's session with this id, if Redis still has it."""
        session = _from_hash(session_id, await self.redis.hgetall(self._key(session_id)))
        return session if session is not None and session.user_id == user_id else None

    async def touch(self, *, user_id: str, session_id: str, now: datetime, cutoff: datetime) -> bool:
        """Move last activity to `now` if the session exists, is the user's and has not expired."""
        session = await self.get(user_id=user_id, session_id=session_id)
        if session is None or session.last_activity < cutoff:
            return False
        score = now.timestamp()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(session_id), "last_activity", repr(score))
            pipe.expire(self._key(session_id), self._ttl)
            pipe.zadd(self._user_index(user_id), {session_id: score})
            pipe.zadd(self._activity_index, {session_id: score})
            await pipe.execute()
        return True

    async def list(self, *, user_id: str, cutoff: datetime) -> list[Session]:
        """The user's live sessions, most recently active first."""
        index = self._user_index(user_id)
        ids = [i.decode() for i in await self.redis.zrevrangebyscore(index, "+inf", cutoff.timestamp())]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hgetall(self._key(session_id))
            hashes = await pipe.execute()
        sessions, gone = [], []
        for session_id, data in zip(ids, hashes, strict=True):
            session = _from_hash(session_id, data)
            if session is None:  # expired by its TTL: prune the index
                gone.append(session_id)
            else:
                sessions.append(session)
        if gone:
            await self.redis.zrem(index, *gone)
            await self.redis.zrem(self._activity_index, *gone)
        return sessions

    async def sweep(self, cutoff: datetime) -> int:
        """Delete sessions idle since before `cutoff` (whether or not their TTL has fired)."""
        ids = [
            i.decode()
            for i in await self.redis.zrangebyscore(self._activity_index, "-inf", f"({cutoff.timestamp()}")
        ]
        deleted = 0
        for session_id in ids:
            user_id = await self.redis.hget(self._key(session_id), "user_id")
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(session_id))
                if user_id is not None:
                    pipe.zrem(self._user_index(user_id.decode()), session_id)
                pipe.zrem(self._activity_index, session_id)
                results = await pipe.execute()
            deleted += int(results[0])
        return deleted

    async def forget_user(self, user_id: str) -> None:
        """Delete every session of the user and the user's index (erasure)."""
        index = self._user_index(user_id)
        ids = [i.decode() for i in await self.redis.zrange(index, 0, -1)]
        async with self.redis.pipeline(transaction=True) as pipe:
            for session_id in ids:
                pipe.delete(self._key(session_id))
            if ids:
                pipe.zrem(self._activity_index, *ids)
            pipe.delete(index)
            await pipe.execute()

    async def close(self) -> None:
        await self.redis.aclose()


def _from_hash(session_id: str, data: dict[bytes, bytes]) -> Session | None:
    if not data:
        return None
    return Session(
        id=session_id,
        user_id=data[b"user_id"].decode(),
        kind=data[b"kind"].decode(),
        started_at=datetime.fromisoformat(data[b"started_at"].decode()),
        last_activity=datetime.fromtimestamp(float(data[b"last_activity"]), UTC),
        metadata=orjson.loads(data.get(b"metadata", b"{}")),
    )


class Sessions:
    """Sessions for routes and, through `chat.ports.SESSIONS`, other contexts: owner-checked, expiring."""

    def __init__(
        self, store: SessionStore, *, max_age: timedelta, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.store = store
        self.max_age = max_age
        self.clock = clock

    def expires_at(self, session: Session) -> datetime:
        return session.last_activity + self.max_age

    async def open(self, *, user_id: str, kind: str, metadata: dict[str, Any] | None = None) -> Session:
        """Start a session of `kind` (chat | voice) for the user."""
        if kind not in KINDS:
            raise bad_request(f"session kind must be one of {', '.join(KINDS)}, not {kind!r}", param="kind")
        now = self.clock()
        session = Session(
            id=new_id(),
            user_id=user_id,
            kind=kind,
            started_at=now,
            last_activity=now,
            metadata=metadata or {},
        )
        await self.store.create(session)
        return session

    async def get(self, *, user_id: str, session_id: str) -> Session:
        """The user's live session; 404 when it is missing, expired or someone else's."""
        session = await self.store.get(user_id=user_id, session_id=session_id)
        if session is None or session.last_activity < self.clock() - self.max_age:
            raise _missing(session_id)
        return session

    async def touch(self, *, user_id: str, session_id: str) -> Session:
        """Record activity now; 404 when the session is missing, expired or someone else's."""
        now = self.clock()
        if not await self.store.touch(
            user_id=user_id, session_id=session_id, now=now, cutoff=now - self.max_age
        ):
            raise _missing(session_id)
        return await self.get(user_id=user_id, session_id=session_id)

    async def list(self, *, user_id: str) -> list[Session]:
        """The user's live sessions, most recently active first."""
        return await self.store.list(user_id=user_id, cutoff=self.clock() - self.max_age)

    async def sweep(self, cutoff: datetime) -> int:
        """Delete sessions idle since before `cutoff` (a retention rule)."""
        return await self.store.sweep(cutoff)

    async def all_of(self, *, user_id: str) -> list[Session]:
        """Every stored session of the user, expired ones included (export)."""
        return await self.store.list(user_id=user_id, cutoff=datetime.min.replace(tzinfo=UTC))

    async def forget_user(self, *, user_id: str) -> None:
        """Delete every session of the user (erasure)."""
        await self.store.forget_user(user_id)


def _missing(session_id: str) -> Exception:
    return not_found(f"no session {session_id!r} (it may have expired)", param="session_id")
