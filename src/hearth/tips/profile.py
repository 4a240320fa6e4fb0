"""The profile (ADR-0014's shared substrate): preferences, named contexts with one active, and per-key
consents with their audit trail. Revoking a consent deletes, in the same transaction, the stored outputs of
every agent that needs it, so no later prompt can use them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import time
from zoneinfo import ZoneInfo

from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.events.bus import EventBus
from hearth.platform.db import Database, utcnow
from hearth.platform.errors import HearthError, not_found
from hearth.tips.consents import CONSENTS
from hearth.tips.events import ConsentGranted, ConsentRevoked, TipsContextActivated, TipsPreferencesChanged
from hearth.tips.manifest import Registry
from hearth.tips.models import AgentOutput, TipsConsent, TipsConsentLog, TipsContext, TipsPreferences
from hearth.tips.repository import ContextRepository
from hearth.tips.schemas import (
    ConsentLogEntry,
    ConsentOut,
    ContextOut,
    Preferences,
    PreferencesUpdate,
    Profile,
)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What eligibility and prompts need of one user's profile, read once."""

    preferences: Preferences
    active_context: str | None
    granted: frozenset[str]

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.preferences.timezone)

    @property
    def work_hours(self) -> tuple[time, time]:
        return time.fromisoformat(self.preferences.work_start), time.fromisoformat(self.preferences.work_end)


async def ensure_profile(session: AsyncSession, user_id: str) -> None:
    """Create the user's preferences row if missing: a tips user is one who has a profile (pre-compute
    runs over these users)."""
    values = {"user_id": user_id, "channels": ["in_app"], "disabled_agents": [], "updated_at": utcnow()}
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(insert(TipsPreferences).values(**values).on_conflict_do_nothing())


_PREF_FIELDS = (
    "tone",
    "tip_length",
    "language",
    "timezone",
    "work_start",
    "work_end",
    "channels",
    "disabled_agents",
)


async def snapshots(s: AsyncSession, user_ids: list[str], consents: list[str]) -> dict[str, Snapshot]:
    """The profile snapshots of these users in two statements (consents: only the keys asked about)."""
    p, c = TipsPreferences, TipsContext
    columns = [getattr(p, name) for name in ("user_id", *_PREF_FIELDS)]
    # The active context rides along (a context exists only for users with a profile row).
    stmt = (
        select(*columns, c.name)
        .select_from(p)
        .outerjoin(c, and_(c.user_id == p.user_id, c.active.is_(True)))
        .where(p.user_id.in_(user_ids))
    )
    prefs = {row[0]: row for row in (await s.execute(stmt)).all()}
    granted: dict[str, set[str]] = defaultdict(set)
    if consents:
        rows = await s.execute(
            select(TipsConsent.user_id, TipsConsent.key).where(
                TipsConsent.user_id.in_(user_ids),
                TipsConsent.key.in_(consents),
                TipsConsent.granted.is_(True),
            )
        )
        for user_id, key in rows.all():
            granted[user_id].add(key)
    out = {}
    for user_id in user_ids:
        row = prefs.get(user_id)
        # Stored values were validated on the way in: build the model without validating again (hot loop).
        prefs_ = (
            Preferences.model_construct(**dict(zip(_PREF_FIELDS, row[1:-1], strict=True)))
            if row
            else Preferences()
        )
        out[user_id] = Snapshot(prefs_, row[-1] if row else None, frozenset(granted.get(user_id, ())))
    return out


def unknown_consent(key: str) -> HearthError:
    return not_found(f"no consent {key!r}; known: {', '.join(CONSENTS)}", param="key", code="unknown_consent")


class ProfileService:
    def __init__(self, db: Database, bus: EventBus, registry: Registry) -> None:
        self.db = db
        self.bus = bus
        self.registry = registry

    async def snapshot(self, session: AsyncSession, user_id: str) -> Snapshot:
        """The user's snapshot with every consent the registry's agents need."""
        keys = sorted({key for agent in self.registry for key in agent.manifest.consents})
        return (await snapshots(session, [user_id], keys))[user_id]

    async def get(self, *, user_id: str) -> Profile:
        async with self.db.transaction() as s:
            await ensure_profile(s, user_id)
        async with self.db.sessions() as s:
            snap = await self.snapshot(s, user_id)
            contexts = await self._contexts(s, user_id)
            consents = await self._consents(s, user_id)
        return Profile(
            preferences=snap.preferences,
            contexts=contexts,
            active_context=snap.active_context,
            consents=consents,
        )

    async def update_preferences(self, *, user_id: str, changes: PreferencesUpdate) -> Preferences:
        values = {name: getattr(changes, name) for name in changes.model_fields_set}
        if any(v is None for v in values.values()):
            raise HearthError(
                422, "preferences cannot be set to null; leave the field out", code="invalid_value"
            )
        unknown = [a for a in values.get("disabled_agents", []) if self.registry.get(a) is None]
        if unknown:
            raise HearthError(
                422,
                f"disabled_agents: unknown agent {unknown[0]!r}",
                param="disabled_agents",
                code="invalid_value",
            )
        async with self.db.transaction() as s:
            await ensure_profile(s, user_id)
            row = await s.get(TipsPreferences, user_id, with_for_update=True)
            assert row is not None
            merged = {**Preferences.model_validate(row).model_dump(), **values}
            if merged["work_start"] >= merged["work_end"]:
                raise HearthError(
                    422, "work_start must be before work_end", param="work_start", code="invalid_value"
                )
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = utcnow()
            await s.flush()
            await self.bus.publish(TipsPreferencesChanged(user_id=user_id, fields=sorted(values)), session=s)
            return Preferences.model_validate(row)

    # -- contexts -----------------------------------------------------------------------------------------

    async def _contexts(self, s: AsyncSession, user_id: str) -> list[ContextOut]:
        repo = ContextRepository(s, owner_id=user_id)
        rows = await repo.list(repo.select().order_by(TipsContext.name), limit=1000)
        return [ContextOut.model_validate(r) for r in rows]

    async def contexts(self, *, user_id: str) -> list[ContextOut]:
        async with self.db.sessions() as s:
            return await self._contexts(s, user_id)

    async def put_context(self, *, user_id: str, name: str, description: str) -> ContextOut:
        async with self.db.transaction() as s:
            await ensure_profile(s, user_id)
            repo = ContextRepository(s, owner_id=user_id)
            row = await repo.named(name, lock=True)
            if row is None:
                if len(await self._contexts(s, user_id)) >= 50:
                    raise HearthError(409, "at most 50 contexts per user", code="too_many_contexts")
                row = TipsContext(user_id=user_id, name=name, description=description, active=False)
                s.add(row)
            else:
                row.description = description
            await s.flush()
            return ContextOut.model_validate(row)

    async def delete_context(self, *, user_id: str, name: str) -> None:
        async with self.db.transaction() as s:
            repo = ContextRepository(s, owner_id=user_id)
            row = await repo.named(name, lock=True)
            if row is None:
                raise not_found(f"no context {name!r}", param="name")
            was_active = row.active
            await s.delete(row)
            if was_active:
                await self.bus.publish(TipsContextActivated(user_id=user_id, name=None), session=s)

    async def activate(self, *, user_id: str, name: str | None) -> str | None:
        """Make `name` the one active context (None: none)."""
        async with self.db.transaction() as s:
            repo = ContextRepository(s, owner_id=user_id)
            target = None
            if name is not None:
                target = await repo.named(name, lock=True)
                if target is None:
                    raise not_found(f"no context {name!r}; create it first", param="name")
            await s.execute(update(TipsContext).where(TipsContext.user_id == user_id).values(active=False))
            if target is not None:
                target.active = True
            await self.bus.publish(TipsContextActivated(user_id=user_id, name=name), session=s)
        return name

    # -- consents -----------------------------------------------------------------------------------------

    async def _consents(self, s: AsyncSession, user_id: str) -> list[ConsentOut]:
        rows = {r.key: r for r in await s.scalars(select(TipsConsent).where(TipsConsent.user_id == user_id))}
        return [
            ConsentOut(
                key=key,
                description=text,
                granted=bool(rows[key].granted) if key in rows else False,
                updated_at=rows[key].updated_at if key in rows else None,
            )
            for key, text in CONSENTS.items()
        ]

    async def consents(self, *, user_id: str) -> list[ConsentOut]:
        async with self.db.sessions() as s:
            return await self._consents(s, user_id)

    async def set_consent(self, *, user_id: str, key: str, granted: bool) -> ConsentOut:
        """Grant or revoke `key`, with an audit row; a revocation deletes the outputs of the agents that
        need the consent in the same transaction (before any later run or prompt can see them)."""
        if key not in CONSENTS:
            raise unknown_consent(key)
        now = utcnow()
        async with self.db.transaction() as s:
            await ensure_profile(s, user_id)
            row = await s.get(TipsConsent, (user_id, key), with_for_update=True)
            if row is None:
                row = TipsConsent(user_id=user_id, key=key, granted=granted, updated_at=now)
                s.add(row)
            else:
                row.granted = granted
                row.updated_at = now
            deleted = 0
            if not granted:
                agents = self.registry.requiring(key)
                if agents:
                    result = await s.execute(
                        delete(AgentOutput).where(
                            AgentOutput.user_id == user_id, AgentOutput.agent_id.in_(agents)
                        )
                    )
                    deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
            s.add(
                TipsConsentLog(
                    user_id=user_id,
                    key=key,
                    action="granted" if granted else "revoked",
                    outputs_deleted=deleted,
                    at=now,
                )
            )
            event = (
                ConsentGranted(user_id=user_id, key=key)
                if granted
                else ConsentRevoked(user_id=user_id, key=key, outputs_deleted=deleted)
            )
            await self.bus.publish(event, session=s)
        return ConsentOut(key=key, description=CONSENTS[key], granted=granted, updated_at=now)

    async def consent_log(self, *, user_id: str, limit: int) -> list[ConsentLogEntry]:
        async with self.db.sessions() as s:
            rows = await s.scalars(
                select(TipsConsentLog)
                .where(TipsConsentLog.user_id == user_id)
                .order_by(TipsConsentLog.at.desc(), TipsConsentLog.id)
                .limit(limit)
            )
            return [ConsentLogEntry.model_validate(r) for r in rows]
