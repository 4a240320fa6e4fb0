"""Users and API keys: creation, listing, revocation, and the per-request key → Principal lookup."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Collection
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.auth.events import KeyCreated, KeyRevoked, UserCreated, UserDisabled, UserEnabled
from hearth.auth.models import ApiKey, User
from hearth.auth.principal import Principal
from hearth.auth.schemas import KeyOut
from hearth.auth.web_sessions import WebSessions
from hearth.platform.db import Database, utcnow
from hearth.platform.errors import HearthError, bad_request
from hearth.platform.kit.repository import in_chunks, or_404

if TYPE_CHECKING:
    from hearth.events.bus import EventBus
    from hearth.events.schemas import Event
    from hearth.platform.shared import SharedState

log = logging.getLogger("hearth.auth")

KEY_PREFIX = "hk-"
KEY_BODY_CHARS = 40  # secrets.token_urlsafe(30) encodes 30 random bytes as 40 url-safe characters
KEY_LENGTH = len(KEY_PREFIX) + KEY_BODY_CHARS
DISPLAY_PREFIX_CHARS = 11
USERNAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
ROLES = ("admin", "user")
PRIORITIES = ("standard", "premium")
ADMIN_KEY_FILE = "admin-key.txt"

TOUCH_INTERVAL = 60.0  # seconds between last_used_at writes for one key
MISS_CACHE_SECONDS = 1.0  # upper bound for remembering unknown keys
CACHE_MAX_ENTRIES = 50_000  # a flood of random keys must not grow memory without bound
INVALIDATE_CHANNEL = "auth.invalidate"  # "key:<digest>" | "user:<user id>", to every replica (Redis)

# Who the request being served authenticated as: the `actor` of the admin actions it publishes. Set by
# `authenticate`, in the request's own context, so routes need not pass it down.
_acting_as: ContextVar[str | None] = ContextVar("hearth_auth_acting_as", default=None)


def hash_key(token: str) -> str:
    """The SHA-256 hex digest stored for a key (keys are random, so no salt or slow hash is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def generate_key() -> str:
    """A new plaintext key: "hk-" and 40 url-safe random characters."""
    return KEY_PREFIX + secrets.token_urlsafe(30)


def _invalid(message: str, param: str) -> HearthError:
    return HearthError(422, message, param=param, code="invalid_value")


def _check_username(username: str) -> None:
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
        raise _invalid("username must be 1-64 characters of letters, digits, '_', '.' or '-'", "username")


def _check_limit(value: int | None, param: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise _invalid(f"{param} must be a positive integer, or absent for no limit", param)


class AuthService:
    """Owns users and keys; `authenticate` is the hot path and is served from a short in-memory cache."""

    def __init__(
        self,
        db: Database,
        *,
        bus: EventBus | None = None,
        cache_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.bus = bus  # admin actions are published as auth events only with a bus
        self.cache_seconds = cache_seconds
        # Misses are remembered more briefly: a freshly created key is random, so it was never a miss,
        # but an operator fixing a disabled user should not wait long.
        self.miss_seconds = min(cache_seconds, MISS_CACHE_SECONDS)
        self._clock = clock
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        # Concurrent misses for one key share one query instead of stampeding the database.
        self._inflight: dict[str, tuple[int, asyncio.Future[Principal | None]]] = {}
        # Bumped on every invalidation so a lookup that started before a revoke cannot re-cache it.
        self._generation = 0
        self._touched: dict[str, float] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.web = WebSessions(db, self)  # browser sign-in (password or key) and its sessions
        self.shared: SharedState | None = None

    def share_invalidations(self, shared: SharedState) -> None:
        """Replicas tell each other about revoked keys and disabled users over Redis, so a key stops working
        on every replica as soon as the message arrives (milliseconds), not when its cache entry expires.
        A replica that (re)subscribes forgets its whole cache: it may have missed messages."""
        self.shared = shared
        shared.listen(INVALIDATE_CHANNEL, self._invalidated_elsewhere, on_reset=self._forget_all)

    def _invalidated_elsewhere(self, message: str) -> None:
        kind, _, value = message.partition(":")
        if kind == "key":
            self._cache.pop(value, None)
            self._generation += 1
        elif kind == "user":
            self._invalidate(lambda p: p is None or p.user_id == value)
        else:
            self._forget_all()

    def _forget_all(self) -> None:
        self._invalidate(lambda _p: True)

    async def _broadcast(self, message: str) -> None:
        if self.shared is not None:
            await self.shared.publish(INVALIDATE_CHANNEL, message)

    # ---- users ----

    async def create_user(self, *, username: str, role: str = "user", premium: bool = False) -> User:
        """Create a user; 422 for a bad name or role, 409 if the name is taken."""
        try:
            async with self.db.transaction() as session:
                return await self._insert_user(session, username=username, role=role, premium=premium)
        except IntegrityError:
            # Two creates raced past the pre-check: the unique constraint decides, with the same 409.
            raise _taken(username) from None

    async def get_user_by_name(self, *, username: str) -> User | None:
        """The user with this name, or None."""
        async with self.db.sessions() as session:
            return await session.scalar(select(User).where(User.username == username))

    async def get_user(self, *, user_id: str) -> User | None:
        """The user with this id, or None."""
        async with self.db.sessions() as session:
            return await session.get(User, user_id)

    async def usernames(self, user_ids: Collection[str]) -> dict[str, str]:
        """Usernames by id for the ids that exist (auth.ports.UserDirectory)."""
        found: dict[str, str] = {}
        async with self.db.sessions() as session:
            for chunk in in_chunks(sorted(set(user_ids))):
                rows = await session.execute(select(User.id, User.username).where(User.id.in_(chunk)))
                found.update({user_id: name for user_id, name in rows.all()})
        return found

    async def user_id_of(self, username: str) -> str | None:
        """The id of the user named `username`, or None (auth.ports.UserDirectory)."""
        async with self.db.sessions() as session:
            return await session.scalar(select(User.id).where(User.username == username))

    async def list_users(self) -> list[User]:
        """All users, oldest first."""
        async with self.db.sessions() as session:
            rows = await session.scalars(select(User).order_by(User.created_at, User.username))
            return list(rows)

    async def set_user_disabled(self, *, user_id: str, disabled: bool = True) -> User:
        """Disable (or re-enable) a user; their keys stop working at once in this process."""
        async with self.db.transaction() as session:
            user = or_404(
                await session.get(User, user_id),
                f"no user with id {user_id!r}",
                param="user_id",
                code="user_not_found",
            )
            if user.disabled != disabled:
                kind = UserDisabled if disabled else UserEnabled
                await self._publish(
                    session, kind(user_id=user.id, username=user.username, actor=_acting_as.get())
                )
            user.disabled = disabled
        self._invalidate(lambda p: p is None or p.user_id == user_id)
        await self._broadcast(f"user:{user_id}")
        return user

    # ---- keys ----

    async def create_key(
        self,
        *,
        user_id: str | None = None,
        username: str | None = None,
        name: str = "",
        priority: str | None = None,
        rpm_limit: int | None = None,
        tpm_limit: int | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key for a user (by id or name); returns the row and the plaintext, shown only once."""
        async with self.db.transaction() as session:
            user = await self._find_user(session, user_id=user_id, username=username)
            return await self._insert_key(
                session, user, name=name, priority=priority, rpm_limit=rpm_limit, tpm_limit=tpm_limit
            )

    async def list_keys(self, *, user_id: str | None = None, username: str | None = None) -> list[KeyOut]:
        """Keys, optionally of one user (by id or name), oldest first."""
        query = select(ApiKey, User.username).join(User, User.id == ApiKey.user_id)
        async with self.db.sessions() as session:
            if user_id is not None or username is not None:
                user = await self._find_user(session, user_id=user_id, username=username)
                query = query.where(ApiKey.user_id == user.id)
            rows = await session.execute(query.order_by(ApiKey.created_at, ApiKey.id))
            return [KeyOut.of(key, name) for key, name in rows]

    async def get_key(self, *, key_id: str, user_id: str | None = None) -> KeyOut:
        """One key, scoped to its owner when user_id is given; 404 otherwise."""
        async with self.db.sessions() as session:
            key, name = await self._find_key(session, key_id=key_id, user_id=user_id)
            return KeyOut.of(key, name)

    async def revoke_key(self, *, key_id: str, user_id: str | None = None) -> KeyOut:
        """Revoke a key (idempotent; scoped to its owner when user_id is given); 404 if unknown."""
        async with self.db.transaction() as session:
            key, name = await self._find_key(session, key_id=key_id, user_id=user_id)
            if key.revoked_at is None:
                await self._keep_an_admin_key(session, revoking=key)
                key.revoked_at = utcnow()
                revoked = KeyRevoked(
                    key_id=key.id, user_id=key.user_id, username=name, actor=_acting_as.get()
                )
                await self._publish(session, revoked)
            digest = key.key_hash
        self._cache.pop(digest, None)
        self._generation += 1
        await self._broadcast(f"key:{digest}")
        return KeyOut.of(key, name)

    # ---- the hot path ----

    async def authenticate(self, token: str) -> Principal | None:
        """The Principal for a Bearer key, or None if it is unknown, revoked, or its user is disabled."""
        # Anything not shaped like our keys cannot match: answer without hashing, caching or a query.
        if len(token) != KEY_LENGTH or not token.startswith(KEY_PREFIX):
            return None
        digest = hash_key(token)
        now = self._clock()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            principal = hit[0]
        else:
            principal = await self._lookup(digest)
        if principal is not None:
            self._touch(principal.key_id, now)
            _acting_as.set(principal.username)
        return principal

    def act_as(self, username: str) -> None:
        """Name the actor of the admin actions this request publishes (a web session's user)."""
        _acting_as.set(username)

    def acting_as(self) -> str | None:
        """The username the request being served authenticated as; None outside a request (the CLI)."""
        return _acting_as.get()

    async def publish(self, session: AsyncSession, event: Event) -> None:
        """Publish an auth event in the change's own transaction (web_sessions' password changes)."""
        await self._publish(session, event)

    async def _lookup(self, digest: str) -> Principal | None:
        generation = self._generation
        pending = self._inflight.get(digest)
        if pending is None or pending[0] != generation:
            future = asyncio.ensure_future(self._load(digest, generation))
            pending = (generation, future)
            self._inflight[digest] = pending
            future.add_done_callback(lambda f: self._settled(digest, f))
        # shield: one caller giving up must not cancel the query the others are waiting on.
        return await asyncio.shield(pending[1])

    def _settled(self, digest: str, future: asyncio.Future[Principal | None]) -> None:
        current = self._inflight.get(digest)
        if current is not None and current[1] is future:
            del self._inflight[digest]
        if not future.cancelled():
            future.exception()  # mark retrieved: every waiter may have been cancelled

    async def _load(self, digest: str, generation: int) -> Principal | None:
        async with self.db.sessions() as session:
            query = select(ApiKey, User).join(User, User.id == ApiKey.user_id)
            row = (await session.execute(query.where(ApiKey.key_hash == digest))).first()
        principal = None
        if row is not None:
            key, user = row[0], row[1]
            if key.revoked_at is None and not user.disabled:
                principal = Principal.of_key(user, key)
        if generation == self._generation:
            self._remember(digest, principal)
        return principal

    def _remember(self, digest: str, principal: Principal | None) -> None:
        now = self._clock()
        if len(self._cache) >= CACHE_MAX_ENTRIES:
            self._cache = {d: e for d, e in self._cache.items() if e[1] > now}
            if len(self._cache) >= CACHE_MAX_ENTRIES:
                self._cache.clear()
        ttl = self.cache_seconds if principal is not None else self.miss_seconds
        self._cache[digest] = (principal, now + ttl)

    def _invalidate(self, predicate: Callable[[Principal | None], bool]) -> None:
        self._generation += 1
        self._cache = {d: e for d, e in self._cache.items() if not predicate(e[0])}

    def _touch(self, key_id: str, now: float) -> None:
        last = self._touched.get(key_id)
        if last is not None and now - last < TOUCH_INTERVAL:
            return
        self._touched[key_id] = now
        task = asyncio.get_running_loop().create_task(self._write_last_used(key_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_last_used(self, key_id: str) -> None:
        try:
            async with self.db.transaction() as session:
                await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))
        except Exception:
            # Bookkeeping only: a busy or closing database must never fail or slow a request.
            log.warning("could not record key use", extra={"key_id": key_id}, exc_info=True)

    async def drain(self) -> None:
        """Wait for pending last-used writes (call before closing the database)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # ---- first start ----

    async def ensure_first_admin(self, *, data_dir: Path) -> str | None:
        """On an empty database create user "admin" and a key saved to data_dir/admin-key.txt (0600)."""
        async with self.db.sessions() as session:
            if await session.scalar(select(User.id).limit(1)) is not None:
                return None
        try:
            async with self.db.transaction() as session:
                user = await self._insert_user(session, username="admin", role="admin", premium=False)
                _key, token = await self._insert_key(session, user, name="first admin key")
                await session.flush()
                # Written before commit: if the file cannot be written, no admin without a known key remains.
                _write_secret(Path(data_dir) / ADMIN_KEY_FILE, token + "\n")
        except IntegrityError:
            return None  # another process created the first admin at the same moment
        except HearthError as exc:
            if exc.status == 409:
                return None  # ... and committed before our name check
            raise
        return token

    # ---- helpers ----

    async def _insert_user(self, session: AsyncSession, *, username: str, role: str, premium: bool) -> User:
        _check_username(username)
        if role not in ROLES:
            raise _invalid("role must be 'admin' or 'user'", "role")
        if await session.scalar(select(User.id).where(User.username == username)) is not None:
            raise _taken(username)
        user = User(username=username, role=role, premium=bool(premium), disabled=False, created_at=utcnow())
        session.add(user)
        await session.flush()
        created = UserCreated(
            user_id=user.id, username=username, role=role, premium=user.premium, actor=_acting_as.get()
        )
        await self._publish(session, created)
        return user

    async def _insert_key(
        self,
        session: AsyncSession,
        user: User,
        *,
        name: str = "",
        priority: str | None = None,
        rpm_limit: int | None = None,
        tpm_limit: int | None = None,
    ) -> tuple[ApiKey, str]:
        if priority is None:
            priority = "premium" if user.premium else "standard"
        if priority not in PRIORITIES:
            raise _invalid("priority must be 'standard' or 'premium'", "priority")
        if not isinstance(name, str) or len(name) > 128:
            raise _invalid("name must be at most 128 characters", "name")
        _check_limit(rpm_limit, "rpm_limit")
        _check_limit(tpm_limit, "tpm_limit")
        token = generate_key()
        key = ApiKey(
            user_id=user.id,
            name=name,
            prefix=token[:DISPLAY_PREFIX_CHARS],
            key_hash=hash_key(token),
            priority=priority,
            rpm_limit=rpm_limit,
            tpm_limit=tpm_limit,
            created_at=utcnow(),
        )
        session.add(key)
        await session.flush()
        created = KeyCreated(
            key_id=key.id,
            user_id=user.id,
            username=user.username,
            name=name,
            priority=priority,
            actor=_acting_as.get(),
        )
        await self._publish(session, created)
        return key, token

    async def _publish(self, session: AsyncSession, event: Event) -> None:
        """Publish in the change's own transaction: the audit trail commits or rolls back with it."""
        if self.bus is not None:
            await self.bus.publish(event, session=session)

    async def _keep_an_admin_key(self, session: AsyncSession, *, revoking: ApiKey) -> None:
        """409 when `revoking` is the last active key of an enabled admin: without one, every admin route is
        closed and only the command line on the server's database can recover."""
        admin_keys = (
            select(ApiKey.id)
            .join(User, User.id == ApiKey.user_id)
            .where(User.role == "admin", User.disabled.is_(False), ApiKey.revoked_at.is_(None))
            .with_for_update()  # two revocations racing for the last two admin keys: one waits, then sees
        )
        active = set((await session.scalars(admin_keys)).all())
        if active == {revoking.id}:
            raise HearthError(
                409,
                "this is the last active admin key: create another admin key before revoking it",
                param="key_id",
                code="last_admin_key",
            )

    async def _find_user(self, session: AsyncSession, *, user_id: str | None, username: str | None) -> User:
        if (user_id is None) == (username is None):
            raise bad_request("give exactly one of user_id or username", param="user", code="invalid_user")
        if user_id is not None:
            user = await session.get(User, user_id)
        else:
            user = await session.scalar(select(User).where(User.username == username))
        what = f"id {user_id!r}" if user_id is not None else f"name {username!r}"
        return or_404(user, f"no user with {what}", param="user", code="user_not_found")

    async def _find_key(
        self, session: AsyncSession, *, key_id: str, user_id: str | None
    ) -> tuple[ApiKey, str]:
        query = select(ApiKey, User.username).join(User, User.id == ApiKey.user_id).where(ApiKey.id == key_id)
        if user_id is not None:
            query = query.where(ApiKey.user_id == user_id)
        row = or_404(
            (await session.execute(query)).first(),
            f"no API key with id {key_id!r}",
            param="key_id",
            code="key_not_found",
        )
        return row[0], row[1]


def _taken(username: str) -> HearthError:
    return HearthError(409, f"user {username!r} already exists", param="username", code="user_exists")


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is ignored when the file already exists
        os.write(fd, text.encode())
    finally:
        os.close(fd)
