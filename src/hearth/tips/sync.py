"""Connectors: add, list, remove, and sync them into signals.

A sync fetches from the source, then in one transaction replaces or updates the connector's signals, moves
its cursor, records success and publishes one `SignalsReceived` per kind. A failure (a refused token, a 429
that will not clear, garbage) is recorded on that connector alone: its last error, its failure count and
an exponential backoff before the next attempt; the other connectors sync as usual."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, select

from hearth.events.bus import EventBus
from hearth.platform.db import Database, new_id, utcnow
from hearth.platform.errors import HearthError
from hearth.tips.consents import SIGNAL_KINDS
from hearth.tips.events import ConnectorAdded, ConnectorFailed, SignalsReceived
from hearth.tips.manifest import Registry
from hearth.tips.models import AgentOutput, TipsConnector, TipsCredential, TipsPreferences, TipsSignal
from hearth.tips.profile import ensure_profile
from hearth.tips.repository import ConnectorRepository
from hearth.tips.schemas import ConnectorIn, ConnectorOut
from hearth.tips.sources.base import Fetched, Source, SourceError
from hearth.tips.sources.localfiles import IcsSource, MarkdownSource, resolve
from hearth.tips.sources.todoist import TodoistSource
from hearth.tips.vault import Vault, VaultError

log = logging.getLogger("hearth.tips")
MAX_CONNECTORS = 20


class Connectors:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        vault: Vault,
        registry: Registry,
        *,
        todoist_url: str,
        files_root: Path,
        interval: timedelta,
        backoff: timedelta,
        max_backoff: timedelta,
        http_retries: int = 4,
        http_backoff: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.bus = bus
        self.vault = vault
        self.registry = registry
        self.todoist_url = todoist_url
        self.files_root = files_root
        self.interval = interval
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.http_retries = http_retries
        self.http_backoff = http_backoff
        self.clock = clock

    # -- CRUD ---------------------------------------------------------------------------------------------

    async def add(self, *, user_id: str, body: ConnectorIn) -> ConnectorOut:
        config: dict[str, str] = {}
        if body.path is not None:
            try:
                resolve(self.files_root, body.path)
            except SourceError as exc:
                raise HearthError(422, f"path: {exc}", param="path", code="invalid_value") from None
            config["path"] = body.path
        async with self.db.transaction() as s:
            await ensure_profile(s, user_id)
            repo = ConnectorRepository(s, owner_id=user_id)
            if len(await repo.list(limit=MAX_CONNECTORS + 1)) >= MAX_CONNECTORS:
                raise HearthError(
                    409, f"at most {MAX_CONNECTORS} connectors per user", code="too_many_connectors"
                )
            credential_id = None
            if body.token is not None:
                credential = TipsCredential(
                    id=new_id(), user_id=user_id, provider=body.kind, secret=self.vault.seal(body.token)
                )
                s.add(credential)
                await s.flush()  # before the connector that references it
                credential_id = credential.id
            row = TipsConnector(
                id=new_id(),
                user_id=user_id,
                kind=body.kind,
                name=body.name or (body.path or body.kind),
                config=config,
                credential_id=credential_id,
                cursor={},
                status="new",
                failures=0,
                next_sync_at=self.clock(),
            )
            s.add(row)
            await s.flush()
            await self.bus.publish(
                ConnectorAdded(user_id=user_id, connector_id=row.id, kind=row.kind), session=s
            )
            return _out(row, {})

    async def list(self, *, user_id: str) -> list[ConnectorOut]:
        async with self.db.sessions() as s:
            repo = ConnectorRepository(s, owner_id=user_id)
            rows = await repo.list(
                repo.select().order_by(TipsConnector.created_at, TipsConnector.id), limit=MAX_CONNECTORS
            )
            counts = await self._counts(s, [r.id for r in rows])
            return [_out(r, counts.get(r.id, {})) for r in rows]

    async def get(self, *, user_id: str, connector_id: str) -> ConnectorOut:
        async with self.db.sessions() as s:
            row = await ConnectorRepository(s, owner_id=user_id).get_or_404(connector_id)
            return _out(row, (await self._counts(s, [row.id])).get(row.id, {}))

    async def remove(self, *, user_id: str, connector_id: str) -> None:
        """Delete the connector, its signals and its vault entry."""
        async with self.db.transaction() as s:
            row = await ConnectorRepository(s, owner_id=user_id).get_or_404(connector_id, lock=True)
            await s.execute(delete(TipsSignal).where(TipsSignal.connector_id == row.id))
            credential_id = row.credential_id
            await s.delete(row)
            await s.flush()
            if credential_id:
                await s.execute(delete(TipsCredential).where(TipsCredential.id == credential_id))

    async def _counts(self, s, connector_ids: list[str]) -> dict[str, dict[str, int]]:  # type: ignore[no-untyped-def]
        if not connector_ids:
            return {}
        rows = await s.execute(
            select(TipsSignal.connector_id, TipsSignal.kind, func.count())
            .where(TipsSignal.connector_id.in_(connector_ids))
            .group_by(TipsSignal.connector_id, TipsSignal.kind)
        )
        out: dict[str, dict[str, int]] = {}
        for cid, kind, n in rows.all():
            out.setdefault(cid, {})[kind] = int(n)
        return out

    # -- sources ------------------------------------------------------------------------------------------

    async def _source(self, row: TipsConnector, timezone: ZoneInfo) -> Source:
        if row.kind == "todoist":
            if not row.credential_id:
                raise SourceError("no token stored for this connector")
            async with self.db.sessions() as s:
                credential = await s.get(TipsCredential, row.credential_id)
            if credential is None:
                raise SourceError("no token stored for this connector")
            try:
                token = self.vault.open(credential.secret)
            except VaultError as exc:
                raise SourceError(str(exc)) from None
            return TodoistSource(
                token,
                base_url=self.todoist_url,
                timezone=timezone,
                retries=self.http_retries,
                backoff=self.http_backoff,
                now=self.clock(),
            )
        path = resolve(self.files_root, str(row.config.get("path", "")))
        if row.kind == "markdown":
            return MarkdownSource(path, timezone=timezone)
        if row.kind == "ics":
            return IcsSource(path, timezone=timezone)
        raise SourceError(f"unknown connector kind {row.kind!r}")

    async def _timezone(self, user_id: str) -> ZoneInfo:
        async with self.db.sessions() as s:
            zone = await s.scalar(select(TipsPreferences.timezone).where(TipsPreferences.user_id == user_id))
        return ZoneInfo(zone or "UTC")

    # -- syncing ------------------------------------------------------------------------------------------

    async def sync(self, *, user_id: str, connector_id: str) -> ConnectorOut:
        """Sync one of the user's connectors now (a failure is recorded, not raised)."""
        async with self.db.sessions() as s:
            await ConnectorRepository(s, owner_id=user_id).get_or_404(connector_id)
        await self._sync(connector_id)
        return await self.get(user_id=user_id, connector_id=connector_id)

    async def sync_user(self, *, user_id: str) -> list[ConnectorOut]:
        """Sync every connector of the user, each on its own."""
        for connector in await self.list(user_id=user_id):
            await self._sync(connector.id)
        return await self.list(user_id=user_id)

    async def sync_due(self) -> int:
        """Sync every connector whose next attempt is due; returns how many were tried."""
        async with self.db.sessions() as s:
            due = list(
                await s.scalars(
                    select(TipsConnector.id)
                    .where(TipsConnector.next_sync_at <= self.clock())
                    .order_by(TipsConnector.next_sync_at)
                    .limit(200)
                )
            )
        for connector_id in due:
            await self._sync(connector_id)
        return len(due)

    async def _sync(self, connector_id: str) -> None:
        async with self.db.sessions() as s:
            row = await s.get(TipsConnector, connector_id)
        if row is None:
            return
        try:
            source = await self._source(row, await self._timezone(row.user_id))
            fetched = await source.fetch(dict(row.cursor or {}))
        except SourceError as exc:
            await self._failed(row, str(exc))
            return
        except Exception as exc:  # a bug in a source must not stop the other connectors
            log.exception("tips connector %s (%s) crashed", row.id, row.kind)
            await self._failed(row, f"internal error: {type(exc).__name__}")
            return
        await self._store(row, fetched)

    async def _store(self, row: TipsConnector, fetched: Fetched) -> None:
        now = self.clock()
        async with self.db.transaction() as s:
            current = await s.get(TipsConnector, row.id, with_for_update=True)
            if current is None:  # removed while fetching
                return
            touched: dict[str, list[str]] = {}
            for kind, items in fetched.full.items():
                await s.execute(
                    delete(TipsSignal).where(TipsSignal.connector_id == row.id, TipsSignal.kind == kind)
                )
                touched.setdefault(kind, []).extend(i.external_id for i in items)
            changed_by_kind: dict[str, list[str]] = {}
            for item in fetched.changed:
                changed_by_kind.setdefault(item.kind, []).append(item.external_id)
            for kind, ids in changed_by_kind.items():
                for i in range(0, len(ids), 500):
                    await s.execute(
                        delete(TipsSignal).where(
                            TipsSignal.connector_id == row.id,
                            TipsSignal.kind == kind,
                            TipsSignal.external_id.in_(ids[i : i + 500]),
                        )
                    )
                touched.setdefault(kind, []).extend(ids)
            completed = changed_by_kind.get("task.completed", [])
            for i in range(0, len(completed), 500):  # a task completed since is no longer open
                await s.execute(
                    delete(TipsSignal).where(
                        TipsSignal.connector_id == row.id,
                        TipsSignal.kind == "task.open",
                        TipsSignal.external_id.in_(completed[i : i + 500]),
                    )
                )
            items = {(i.kind, i.external_id): i for kind in fetched.full.values() for i in kind}
            items.update({(i.kind, i.external_id): i for i in fetched.changed})
            rows = [
                {
                    "id": new_id(),
                    "user_id": row.user_id,
                    "connector_id": row.id,
                    "kind": i.kind,
                    "external_id": i.external_id[:128],
                    "title": i.title[:500],
                    "project": (i.project or None) and i.project[:200],
                    "due_at": i.due_at,
                    "at": i.at,
                    "priority": i.priority,
                    "updated_at": now,
                }
                for i in items.values()
            ]
            if rows:
                await s.execute(insert(TipsSignal), rows)
            current.cursor = {**(current.cursor or {}), **fetched.cursor}
            current.status = "ok"
            current.last_error = None
            current.failures = 0
            current.last_sync_at = now
            current.next_sync_at = now + self.interval
            # New signals: the outputs of agents reading them are stale; the next tip recomputes them.
            kinds = set(touched)
            stale = [a.id for a in self.registry if kinds & set(a.manifest.inputs)]
            if stale:
                await s.execute(
                    delete(AgentOutput).where(
                        AgentOutput.user_id == row.user_id, AgentOutput.agent_id.in_(stale)
                    )
                )
            events = [
                SignalsReceived(
                    user_id=row.user_id,
                    connector_id=row.id,
                    kind=kind,
                    count=len(ids),
                    external_ids=ids[:100],
                )
                for kind, ids in sorted(touched.items())
                if kind in SIGNAL_KINDS
            ]
            if events:
                await self.bus.publish_many(events, session=s)

    async def _failed(self, row: TipsConnector, error: str) -> None:
        async with self.db.transaction() as s:
            current = await s.get(TipsConnector, row.id, with_for_update=True)
            if current is None:
                return
            current.failures += 1
            wait = min(self.backoff * 2 ** (current.failures - 1), self.max_backoff)
            current.status = "error"
            current.last_error = error[:1000]
            current.next_sync_at = self.clock() + wait
            await self.bus.publish(
                ConnectorFailed(
                    user_id=row.user_id,
                    connector_id=row.id,
                    error=error[:1000],
                    failures=current.failures,
                    retry_in_seconds=wait.total_seconds(),
                ),
                session=s,
            )

    # -- closing a task at its source ------------------------------------------------------------------------

    async def close_task(self, *, user_id: str, ref: str) -> None:
        """Mark the task `ref` ("<connector id>:<external id>") done at its source; raises SourceError when
        the source refuses or cannot."""
        connector_id, _, external_id = ref.partition(":")
        async with self.db.sessions() as s:
            row = await ConnectorRepository(s, owner_id=user_id).get(connector_id)
        if row is None:
            raise SourceError("the task's connector was removed")
        source = await self._source(row, await self._timezone(user_id))
        if not await source.close_task(external_id):
            raise SourceError(f"a {row.kind} connector cannot mark tasks done")


def _out(row: TipsConnector, counts: dict[str, int]) -> ConnectorOut:
    return ConnectorOut(
        id=row.id,
        kind=row.kind,
        name=row.name,
        path=(row.config or {}).get("path"),
        has_credential=row.credential_id is not None,
        status=row.status,
        last_error=row.last_error,
        failures=row.failures,
        last_sync_at=row.last_sync_at,
        next_sync_at=row.next_sync_at,
        signals=counts,
    )
