"""The usage ledger: folds InferenceUsage events into per-day rows and answers filtered reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.auth.ports import UserDirectory
from hearth.gateway.events import InferenceUsage
from hearth.platform.db import Database
from hearth.platform.errors import bad_request, not_found
from hearth.platform.kit.time import utcnow
from hearth.platform.personal_data import Rows, row_dict
from hearth.usage.models import NO_KEY, UsageDay

SYSTEM_USER = "system"  # the user_id of the platform's own calls (ingestion embeddings, planner extraction)
CONSUMER = "usage-ledger"  # the bus consumer name: keys its idempotency ledger and JetStream durable


@dataclass(frozen=True)
class UsageFilter:
    """Which ledger rows a report covers; every field narrows it (None: no narrowing)."""

    since: date | None = None
    until: date | None = None  # inclusive
    user: str | None = None  # a username
    key_id: str | None = None
    alias: str | None = None


@dataclass(frozen=True)
class UsageLine:
    day: date
    user_id: str
    username: str | None  # None for the platform's own calls ("system") and unknown ids
    key_id: str | None
    alias: str
    requests: int
    failures: int
    prompt_tokens: int
    completion_tokens: int


def usage_filter(
    *,
    day: date | None = None,
    since: date | None = None,
    until: date | None = None,
    user: str | None = None,
    key_id: str | None = None,
    alias: str | None = None,
) -> UsageFilter:
    """A filter from request-style parameters; 400 when they contradict each other."""
    if day is not None and (since is not None or until is not None):
        raise bad_request("give either day or since/until, not both", param="day", code="invalid_filter")
    if since is not None and until is not None and since > until:
        raise bad_request(f"since ({since}) is after until ({until})", param="since", code="invalid_filter")
    if day is not None:
        since = until = day
    return UsageFilter(since=since, until=until, user=user, key_id=key_id, alias=alias)


class UsageLedger:
    """The ledger; also the usage context's personal-data holder (a user's rows, keyed by user id)."""

    context = "usage"

    def __init__(self, *, db: Database, users: UserDirectory) -> None:
        self.db = db
        self.users = users

    async def record(self, event: InferenceUsage, session: AsyncSession) -> None:
        """Add one usage window to its day's row, in the bus's transaction (with the consumed record).

        A window of a user who no longer exists is dropped: the gateway sums usage in memory for a couple
        of seconds, so the last window of an erased user can arrive after the erasure and must not bring
        their id back."""
        if event.user_id != SYSTEM_USER and not await self.users.usernames([event.user_id]):
            return
        where = (
            UsageDay.day == event.window_start.date(),
            UsageDay.user_id == event.user_id,
            UsageDay.key_id == (event.key_id or NO_KEY),
            UsageDay.alias == event.alias,
        )
        # An increment in SQL, not read-modify-write: servers sharing a database may add to one row at once.
        result = await session.execute(
            update(UsageDay)
            .where(*where)
            .values(
                requests=UsageDay.requests + event.requests,
                failures=UsageDay.failures + event.failures,
                prompt_tokens=UsageDay.prompt_tokens + event.prompt_tokens,
                completion_tokens=UsageDay.completion_tokens + event.completion_tokens,
                updated_at=utcnow(),
            )
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            # A concurrent first insert makes this flush fail; the bus retries and the update then applies.
            session.add(
                UsageDay(
                    day=event.window_start.date(),
                    user_id=event.user_id,
                    key_id=event.key_id or NO_KEY,
                    alias=event.alias,
                    requests=event.requests,
                    failures=event.failures,
                    prompt_tokens=event.prompt_tokens,
                    completion_tokens=event.completion_tokens,
                )
            )

    async def export_user(self, user_id: str) -> Rows:
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(UsageDay).where(UsageDay.user_id == user_id).order_by(UsageDay.day, UsageDay.alias)
            )
            return {"usage_daily": [row_dict(r, exclude=("id",)) for r in rows]}

    async def erase_user(self, user_id: str) -> None:
        async with self.db.transaction() as session:
            await session.execute(delete(UsageDay).where(UsageDay.user_id == user_id))

    async def report(self, *, where: UsageFilter) -> list[UsageLine]:
        """Ledger rows matching `where`, newest day first; 404 for an unknown user."""
        stmt = select(UsageDay).order_by(
            UsageDay.day.desc(), UsageDay.user_id, UsageDay.key_id, UsageDay.alias
        )
        if where.since is not None:
            stmt = stmt.where(UsageDay.day >= where.since)
        if where.until is not None:
            stmt = stmt.where(UsageDay.day <= where.until)
        if where.user is not None:
            user_id = await self.users.user_id_of(where.user)
            if user_id is None:
                raise not_found(f"no user named {where.user!r}", param="user", code="user_not_found")
            stmt = stmt.where(UsageDay.user_id == user_id)
        if where.key_id is not None:
            stmt = stmt.where(UsageDay.key_id == where.key_id)
        if where.alias is not None:
            stmt = stmt.where(UsageDay.alias == where.alias)
        async with self.db.sessions() as session:
            rows = list(await session.scalars(stmt))
        names = await self.users.usernames({r.user_id for r in rows})
        return [
            UsageLine(
                day=r.day,
                user_id=r.user_id,
                username=names.get(r.user_id),
                key_id=r.key_id or None,
                alias=r.alias,
                requests=r.requests,
                failures=r.failures,
                prompt_tokens=r.prompt_tokens,
                completion_tokens=r.completion_tokens,
            )
            for r in rows
        ]
